//! Restarts of the real binary: what the data directory keeps across them
//! (the session secret), what `--ephemeral` does not, and a directory that
//! cannot be used.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{
    PATIENCE, ResumingEvents, RunningServer, TempDir, User, run_to_end, said, server_command,
    server_command_keeping,
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
/// directory (the secret, and the rooms at the stop); with `--ephemeral`
/// nothing at all is written there.
#[tokio::test]
async fn the_default_data_directory_is_under_the_working_directory_and_ephemeral_writes_nothing() {
    for (args, expected) in [
        (
            &[][..],
            &[
                "chat-data",
                "chat-data/lock",
                "chat-data/rooms.snapshot",
                "chat-data/secret",
            ][..],
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
    let said = said(&output);
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

/// How many people listen while the server restarts.
const LISTENERS: usize = 40;

/// Restarts of the real binary in a row, each while messages flow.
const RESTARTS: usize = 5;

/// Posts `message {n}` for n = 0, 1, … at 20 a second, each under its own
/// idempotency key and sent again until acknowledged (`204`), as the page's
/// outbox does, until `stop` is set; then `end`. How many were acknowledged
/// before `end`.
async fn send_until_stopped(
    sender: User,
    code: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> usize {
    let path = format!("/rooms/{code}/messages");
    let mut sent = 0;
    loop {
        let stopping = stop.load(std::sync::atomic::Ordering::Relaxed);
        let (text, key) = match stopping {
            false => (format!("message {sent}"), format!("key-{sent}")),
            true => ("end".to_owned(), "key-end".to_owned()),
        };
        let give_up = tokio::time::Instant::now() + 4 * PATIENCE;
        loop {
            let answer = sender
                .post_request(&path, &[("message", &text)])
                .header("idempotency-key", &key)
                .send()
                .await;
            match answer {
                Ok(response) if response.status() == StatusCode::NO_CONTENT => break,
                // 404 would be the room lost: fail rather than retry for ever.
                Ok(response) if response.status() == StatusCode::NOT_FOUND => {
                    panic!("{text}: the room is gone after a restart")
                }
                _ => {
                    assert!(
                        tokio::time::Instant::now() < give_up,
                        "{text}: never acknowledged"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        if stopping {
            return sent;
        }
        sent += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Everything one listener receives until `end`, reconnecting with
/// `Last-Event-ID` whenever its stream ends: the messages' texts, and the
/// kinds of every other event that carries an id (joins, leaves, …).
/// The stream is given back still open.
async fn listen_until_end(
    mut stream: ResumingEvents,
) -> (Vec<String>, Vec<String>, ResumingEvents) {
    let mut messages = Vec::new();
    let mut notices = Vec::new();
    loop {
        let event = stream
            .next_event_within(6 * PATIENCE)
            .await
            .expect("events keep coming through the restarts");
        if event.id.is_none() {
            continue; // heartbeats and `reconnect`
        }
        if event.event != "message" {
            notices.push(format!("{} {}", event.event, event.data["name"]));
            continue;
        }
        let text = event.text().to_owned();
        if text == "end" {
            return (messages, notices, stream);
        }
        messages.push(text);
    }
}

/// Forty people listen while one sends twenty messages a second and the
/// server is stopped (SIGTERM) and started again on the same port and data
/// directory five times in a row: every message acknowledged arrives on every
/// stream exactly once and in order, nobody is announced leaving or joining
/// for the restarts, the member list is the same after, and the cookies from
/// before are the ones used throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_outlive_restarts_while_messages_flow() {
    // Arrange
    let data = TempDir::new("rooms-kept");
    let args = ["--message-rate", "100/s", "--message-burst", "100"];
    let mut server = start_keeping(data.path(), "127.0.0.1:0", &args).await;
    let bind = server.addr.to_string();
    let mut alice = server.user();
    let code = alice.create_room_ok("alice").await;
    let mut listeners = vec![alice.another_tab()];
    for n in 1..LISTENERS {
        let mut member = server.user();
        let joined = member.join(&format!("member {n}"), &code).await;
        assert_eq!(joined.status(), StatusCode::SEE_OTHER);
        listeners.push(member);
    }
    let mut streams = Vec::new();
    for member in listeners {
        streams.push(ResumingEvents::open(member, &code).await);
    }
    let members_before = alice.presence(&code).await;
    assert_eq!(members_before.len(), LISTENERS);
    let listening: Vec<_> = streams
        .into_iter()
        .map(|stream| tokio::spawn(listen_until_end(stream)))
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sending = tokio::spawn(send_until_stopped(
        alice.another_tab(),
        code.clone(),
        stop.clone(),
    ));

    // Act
    for _ in 0..RESTARTS {
        tokio::time::sleep(Duration::from_millis(500)).await;
        server.stop().await;
        let kept = server.wait_for_log("kept 1 rooms for the next start", PATIENCE);
        assert!(kept.await.is_some(), "{}", server.log());
        server = start_keeping(data.path(), &bind, &args).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acknowledged = sending.await.expect("the sender");

    // Assert
    let restored = server.wait_for_log("restored 1 rooms kept at the last stop", PATIENCE);
    assert!(restored.await.is_some(), "{}", server.log());
    let expected: Vec<String> = (0..acknowledged).map(|n| format!("message {n}")).collect();
    assert!(acknowledged > 40, "messages flowed: {acknowledged}");
    let mut still_open = Vec::new();
    for (n, listener) in listening.into_iter().enumerate() {
        let (messages, notices, stream) = listener.await.expect("a listener");
        assert_eq!(messages, expected, "listener {n}: each once, in order");
        assert_eq!(
            notices,
            Vec::<String>::new(),
            "listener {n}: no join or leave"
        );
        let reconnects = stream.reconnects;
        assert!(
            reconnects >= RESTARTS,
            "listener {n} reconnected {reconnects} times"
        );
        still_open.push(stream);
    }
    assert_eq!(
        alice.presence(&code).await,
        members_before,
        "the same members, all connected"
    );
    assert_eq!(
        alice.get(&format!("/rooms/{code}")).await.status(),
        StatusCode::OK
    );
}

/// Rooms kept at a clean stop are restored once: a start after a crash that
/// followed it (SIGKILL, nothing kept) does not bring them back as they were.
#[tokio::test]
async fn a_snapshot_is_restored_once_and_never_after_a_crash() {
    // Arrange
    let data = TempDir::new("stale-snapshot");
    let snapshot = data.path().join("rooms.snapshot");
    let mut server = start_keeping(data.path(), "127.0.0.1:0", &[]).await;
    let bind = server.addr.to_string();
    let mut alice = server.user();
    let code = alice.create_room_ok("alice").await;
    alice.say(&code, "before the stop").await;
    server.stop().await;
    assert!(snapshot.exists(), "kept at the stop");
    let mut server = start_keeping(data.path(), &bind, &[]).await;
    assert!(!snapshot.exists(), "consumed before serving");
    alice.say(&code, "after the restart").await;

    // Act
    server.signal("KILL").await;
    server.exit_within(PATIENCE).await.expect("killed");
    let _server = start_keeping(data.path(), &bind, &[]).await;

    // Assert
    let members = alice.get(&format!("/rooms/{code}/members")).await;
    assert_eq!(
        members.status(),
        StatusCode::NOT_FOUND,
        "lost with the crash"
    );
}
