//! Restarts of the real binary: what the data directory keeps across them
//! (the session secret), what `--ephemeral` does not, and a directory that
//! cannot be used.

use std::path::Path;
use std::process::Stdio;

use reqwest::StatusCode;

use crate::helpers::{
    PATIENCE, RunningServer, TempDir, run_to_end, server_command, server_command_keeping,
};

const RUST_LOG: &str = "info,warp::server=off";

/// The binary keeping what it keeps in `data`, on `bind` (`127.0.0.1:0` for any port).
async fn start_keeping(data: &Path, bind: &str, args: &[&str]) -> RunningServer {
    let command = server_command_keeping(RUST_LOG, data);
    let mut argv = vec!["--bind", bind];
    argv.extend_from_slice(args);
    RunningServer::start_command(command, &argv).await
}

/// Everything under `dir`, as paths relative to it, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("read a directory") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                pending.push(path.clone());
            }
            let relative = path.strip_prefix(dir).expect("under dir");
            found.push(relative.display().to_string());
        }
    }
    found.sort();
    found
}

/// The secret is made once, kept readable by the server's user only, and used
/// again at the next start: a session cookie from before a restart still
/// opens after it (the home page still knows the name typed before).
#[tokio::test]
async fn a_session_from_before_a_restart_is_known_after_it() {
    // Arrange
    let data = TempDir::new("secret-kept");
    let mut server = start_keeping(data.path(), "127.0.0.1:0", &[]).await;
    let mut alice = server.user();
    alice.create_room_ok("Alice Before").await;
    let secret = std::fs::read_to_string(data.path().join("secret")).expect("a secret file");
    server.stop().await;

    // Act
    let _server = start_keeping(data.path(), &server.addr.to_string(), &[]).await;
    let home = alice.get_as_browser("/").await;

    // Assert
    assert_eq!(home.status(), StatusCode::OK);
    let page = home.text().await.expect("the home page");
    assert!(
        page.contains("value=\"Alice Before\""),
        "the cookie opened with the kept secret:\n{page}"
    );
    let again = std::fs::read_to_string(data.path().join("secret")).expect("still there");
    assert_eq!(secret, again, "made once, not at each start");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.path().join("secret"))
            .expect("the secret's metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "readable by the server's user only");
    }
}

/// Without options the data directory is `chat-data` under the working
/// directory; with `--ephemeral` nothing at all is written there.
#[tokio::test]
async fn the_default_data_directory_is_under_the_working_directory_and_ephemeral_writes_nothing() {
    for (args, expected) in [
        (
            &[][..],
            &["chat-data", "chat-data/lock", "chat-data/secret"][..],
        ),
        (&["--ephemeral"][..], &[][..]),
    ] {
        // Arrange
        let workdir = TempDir::new("working-directory");
        let mut command = server_command(RUST_LOG);
        command
            .env_remove("CHAT_EPHEMERAL")
            .current_dir(workdir.path());

        // Act
        let mut server = RunningServer::start_command(command, args).await;
        let mut alice = server.user();
        let code = alice.create_room_ok("alice").await;
        alice.say(&code, "hello").await;
        server.stop().await;

        // Assert
        assert_eq!(files_under(workdir.path()), expected, "{args:?}");
    }
}

/// A data directory that cannot be created stops the server at start, with
/// a message naming the directory and why, an error status and no panic.
#[tokio::test]
async fn an_unusable_data_directory_stops_the_server_saying_which() {
    // Arrange: a directory inside a regular file cannot be made, even by root.
    let scratch = TempDir::new("unusable-data");
    let file = scratch.path().join("a-file");
    std::fs::write(&file, "not a directory").expect("write a file");
    let data = file.join("data");
    let mut command = server_command_keeping(RUST_LOG, &data);
    command
        .args(["--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped());

    // Act
    let output = run_to_end(&mut command, PATIENCE).await;

    // Assert
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !output.status.success(),
        "refused: {}\n{said}",
        output.status
    );
    assert!(
        said.contains(&data.display().to_string()) && said.contains("cannot create"),
        "names the directory and why:\n{said}"
    );
    assert!(!said.contains("panicked"), "no panic:\n{said}");
    assert!(!said.contains("listening on"), "never served:\n{said}");
}
