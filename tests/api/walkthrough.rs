//! The real binary and the real `curl`: the README's terminal walkthrough run as
//! written, graceful shutdown on SIGTERM, the command line, and sessions that
//! survive a restart when `--secret` is set.
//!
//! Every child process sits behind a guard that kills it when the test ends,
//! also when it fails; every wait is on output or exit, bounded by a deadline.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::COOKIE;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::{Instant, timeout, timeout_at};

use crate::helpers::{
    RunningServer, TempDir, collect_output, free_port, room_code, run_to_end, server_command,
    session_cookie, wait_for_port,
};

/// What the server binary logs, isolated from the caller's `RUST_LOG`.
const RUST_LOG: &str = "info,warp::server=off";

/// Longest wait for the server to start, or for a process to exit.
const PATIENCE: Duration = Duration::from_secs(10);

/// The issue: on SIGTERM "the process exits 0 within a few seconds".
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(5);

/// What the walkthrough has to show within this long.
const WALKTHROUGH_DEADLINE: Duration = Duration::from_secs(10);

/// The README's curl walkthrough runs as written, with real `curl`, against the real binary.
#[tokio::test]
async fn the_readme_walkthrough_runs_as_written_with_real_curl() {
    // Arrange
    let mut server = RunningServer::start(&[]).await;

    // Act
    let (seen, workdir) = run_walkthrough(&server, None).await;
    server.stop().await;

    // Assert
    assert_walkthrough_shown(&seen, &workdir);
}

/// The README's owner and private-room walkthrough runs as written with real
/// `curl`, and prints exactly what the README says it prints.
#[tokio::test]
async fn the_readme_owner_walkthrough_prints_what_it_says() {
    // Arrange
    require_program("curl");
    require_program("bash");
    let mut server = RunningServer::start(&[]).await;
    let workdir = TempDir::new("owners-walkthrough");
    let script = workdir.path().join("owners.sh");
    std::fs::write(&script, format!("{}\n", readme_block("owners", "sh"))).expect("write");

    // Act
    let mut command = Command::new("bash");
    command
        .arg(&script)
        .current_dir(workdir.path())
        .env("SERVER", server.url(""))
        .env("CURL_HOME", workdir.path())
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY");
    let ran = run_to_end(&mut command, PATIENCE).await;
    server.stop().await;

    // Assert
    assert!(ran.status.success(), "the script runs: {ran:?}");
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout).trim_end(),
        readme_block("owners-output", "text"),
        "stderr: {}",
        String::from_utf8_lossy(&ran.stderr)
    );
}

/// The same walkthrough works for someone behind a forward HTTP proxy
/// (`tinyproxy`, used as `curl -x` would through `http_proxy`), and every request
/// really went through the proxy.
#[tokio::test]
async fn the_readme_walkthrough_works_through_a_forward_proxy() {
    // Arrange
    let mut server = RunningServer::start(&[]).await;
    let proxy = Tinyproxy::start().await;

    // Act
    let (seen, workdir) = run_walkthrough(&server, Some(&proxy.url)).await;
    server.stop().await;

    // Assert
    assert_walkthrough_shown(&seen, &workdir);
    let log = proxy.log();
    for path in [
        "/rooms ",
        "/join ",
        "/events ",
        "/messages ",
        "/members ",
        "/poll?after=0 ",
    ] {
        assert!(
            log.lines()
                .any(|line| line.contains(path) && line.contains(&server.addr.to_string())),
            "the proxy relayed a request for {path:?}:\n{log}"
        );
    }
}

/// Runs the README's walkthrough in a fresh directory against `server`, through
/// `proxy` if given, until it has shown everything it should (or fails).
async fn run_walkthrough(server: &RunningServer, proxy: Option<&str>) -> (Walkthrough, TempDir) {
    require_program("curl");
    require_program("bash");
    let script = readme_walkthrough();
    let workdir = TempDir::new("walkthrough");
    let script_path = workdir.path().join("walkthrough.sh");
    std::fs::write(&script_path, &script).expect("write the walkthrough script");
    let mut command = std::process::Command::new("bash");
    command
        .arg(&script_path)
        .current_dir(workdir.path())
        .env("SERVER", server.url(""))
        .env("CURL_HOME", workdir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for variable in [
        "http_proxy",
        "HTTP_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "NO_PROXY",
        "no_proxy",
    ] {
        command.env_remove(variable);
    }
    match proxy {
        // What someone behind a proxy has in their environment: curl reads it.
        Some(proxy) => command.env("http_proxy", proxy),
        None => command
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost"),
    };
    let mut child = Command::from(command)
        .spawn()
        .expect("start bash with the walkthrough");
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let mut script = ProcessGroup::new(child);

    let deadline = Instant::now() + WALKTHROUGH_DEADLINE;
    let mut seen = Walkthrough::default();
    while !seen.is_complete() {
        let line = match timeout_at(deadline, stdout.next_line()).await {
            Ok(Ok(Some(line))) => line,
            outcome => panic!(
                "the walkthrough stopped short ({}) after {WALKTHROUGH_DEADLINE:?}.\n\
                 What it has shown: {seen:#?}\nits stderr:\n{}\nthe server's log:\n{}",
                match outcome {
                    Err(_) => "deadline passed",
                    Ok(Ok(_)) => "its output ended",
                    Ok(Err(_)) => "reading its output failed",
                },
                text(&stderr),
                server.log(),
            ),
        };
        seen.take_line(&line);
    }
    assert!(
        script.terminate().await,
        "the walkthrough's process group ends when told to"
    );
    (seen, workdir)
}

fn assert_walkthrough_shown(seen: &Walkthrough, workdir: &TempDir) {
    let code = seen.code.clone().expect("the script echoes `room CODE`");
    assert!(
        code.len() == 4 && code.chars().all(|c| c.is_ascii_uppercase()),
        "the room code is four capital letters: {code:?}"
    );
    assert_eq!(
        seen.hello.as_deref(),
        Some(r#"{"kind":"hello","heartbeat_ms":15000}"#),
        "the stream opens with the hello the README shows: {seen:#?}"
    );
    let created = seen.find("join", "alice", None);
    let joined = seen.find("join", "bob", None);
    let hello = seen.find("message", "bob", Some("hello alice"));
    let answer = seen.find("message", "alice", Some("hi bob!"));
    assert_eq!(
        created.id, 1,
        "Last-Event-ID: 0 replays the room from alice's join, its first event: {seen:#?}"
    );
    assert!(
        created.id < joined.id && joined.id < hello.id && hello.id < answer.id,
        "join(alice) < join(bob) < message(bob) < message(alice) by id: {seen:#?}"
    );
    let ids: Vec<u64> = seen.events.iter().map(|event| event.id).collect();
    assert!(
        ids.windows(2).all(|pair| pair[0] < pair[1]),
        "the stream's ids only grow: {ids:?}"
    );
    for event in &seen.events {
        assert!(
            event.at.ends_with('Z') && event.at.contains('T'),
            "`at` is RFC 3339 UTC: {event:?}"
        );
    }
    let members = seen.members.as_ref().expect("the members line");
    let names: Vec<&str> = members.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        ["alice", "bob"],
        "members lists everyone who joined, in join order: {members:?}"
    );
    assert!(
        !members[1].1,
        "bob never opened a stream, so he is not connected: {members:?}"
    );
    let poll = seen.poll.as_ref().expect("bob's poll line");
    let polled = poll["events"]
        .as_array()
        .unwrap_or_else(|| panic!("the poll's answer has an `events` list: {poll}"));
    let polled: Vec<EventFields> = polled
        .iter()
        .map(|event| {
            (
                event["id"].as_u64().expect("a polled event has an id"),
                event["kind"].as_str().expect("a polled event has a kind"),
                event["name"].as_str().expect("a polled event has a name"),
                event["text"].as_str(),
                event["at"].as_str().expect("a polled event has `at`"),
            )
        })
        .collect();
    let streamed: Vec<EventFields> = [&created, &joined, &hello, &answer]
        .into_iter()
        .map(SeenEvent::fields)
        .collect();
    assert_eq!(
        polled, streamed,
        "bob's poll after=0 gets all four events, the same as alice's stream: {poll}"
    );
    assert_eq!(
        poll["last_id"].as_u64(),
        Some(answer.id),
        "the poll's last_id is the newest event's: {poll}"
    );
    assert!(
        workdir.path().join("alice.jar").is_file() && workdir.path().join("bob.jar").is_file(),
        "the cookie jars land in the working directory"
    );
}

/// A `tinyproxy` of the test's own: a forward HTTP proxy on a free loopback port,
/// configured by a file the test writes, logging every request; killed by PID
/// when dropped.
struct Tinyproxy {
    child: Child,
    url: String,
    log: PathBuf,
    _dir: TempDir,
}

impl Tinyproxy {
    async fn start() -> Self {
        require_program("tinyproxy");
        let dir = TempDir::new("tinyproxy");
        let port = free_port();
        let log = dir.path().join("tinyproxy.log");
        let config = dir.path().join("tinyproxy.conf");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 600\nAllow 127.0.0.1\nMaxClients 50\n\
                 LogLevel Info\nLogFile \"{}\"\nDisableViaHeader No\n",
                log.display()
            ),
        )
        .expect("write the tinyproxy configuration");
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start tinyproxy");
        assert!(
            wait_for_port(port, PATIENCE).await,
            "nothing listens on port {port} after {PATIENCE:?}"
        );
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// On SIGTERM the real binary ends an open `curl -N` stream (live: it has
/// replayed alice's join) and exits 0 within 5 seconds.
#[tokio::test]
async fn sigterm_ends_open_streams_and_the_binary_exits_zero_promptly() {
    // Arrange
    require_program("curl");
    let mut server = RunningServer::start(&[]).await;
    let client = http_client();
    let (cookie, code) = create_room(&client, &server, "alice").await;
    let mut curl = Command::new("curl");
    curl.args(["-sN", "-q", "-H", "Last-Event-ID: 0", "-H"])
        .arg(format!("Cookie: {cookie}"))
        .arg(server.url(&format!("/rooms/{code}/events")))
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut stream = curl.spawn().expect("start curl");
    let mut lines = BufReader::new(stream.stdout.take().expect("piped stdout")).lines();
    let opened = read_until(&mut lines, PATIENCE, |line| line == "event: join").await;
    assert!(
        opened.is_ok(),
        "the stream opens and replays alice's join: {opened:?}\nserver log:\n{}",
        server.log()
    );

    // Act
    let started = Instant::now();
    let exit = server.terminate().await;
    let elapsed = started.elapsed();
    let stream_end = read_until(&mut lines, PATIENCE, |_| false).await;
    let curl_exit = timeout(PATIENCE, stream.wait()).await;

    // Assert
    assert!(
        exit.success(),
        "the server exits 0 on SIGTERM, got {exit}:\n{}",
        server.log()
    );
    assert!(
        elapsed <= SHUTDOWN_LIMIT,
        "the server exits within {SHUTDOWN_LIMIT:?} of SIGTERM, took {elapsed:?}"
    );
    assert!(
        matches!(stream_end, Err(ReadEnd::Eof)),
        "the open stream ends when the server shuts down: {stream_end:?}"
    );
    let curl_exit = curl_exit
        .expect("curl exits once its stream ended")
        .expect("curl's exit status");
    assert!(
        curl_exit.success(),
        "the stream ends cleanly (a complete response), curl says {curl_exit}"
    );
    assert!(
        server.log().contains("shutting down"),
        "the server logs its shutdown:\n{}",
        server.log()
    );
}

/// A SIGTERM that arrives as soon as the server says it is listening is a clean
/// shutdown (exit 0), not the default death by signal.
#[tokio::test]
async fn sigterm_right_after_start_is_a_clean_shutdown() {
    for _ in 0..5 {
        // Arrange
        let mut server = RunningServer::start(&[]).await;

        // Act
        let exit = server.terminate().await;

        // Assert
        assert!(
            exit.success(),
            "exit 0 on an early SIGTERM, got {exit}:\n{}",
            server.log()
        );
    }
}

/// `--help` lists every option, and an invalid `CHAT_GRACE` stops the binary with a clear error.
#[tokio::test]
async fn help_lists_every_option_and_an_invalid_environment_value_is_refused() {
    // Arrange
    let options = [
        "--bind",
        "--grace",
        "--history",
        "--keepalive",
        "--max-message-chars",
        "--secret",
        "--secure-cookies",
        "--session-max-age",
        "--public-host",
        "--trust-proxy",
        "--identity-header",
        "--max-rooms",
        "--max-members-per-room",
        "--max-connections",
        "--max-connections-per-address",
        "--max-streams-per-address",
        "--max-streams-per-session",
        "--max-rooms-per-session",
        "--message-rate",
        "--message-burst",
        "--create-rate",
        "--create-burst",
        "--join-rate",
        "--join-burst",
        "--guess-rate",
        "--guess-burst",
        "--redis",
        "--presence-lease",
        "--data-dir",
        "--ephemeral",
        "--restart-grace",
    ];

    // Act
    let help = run_to_end(server_command(RUST_LOG).arg("--help"), PATIENCE).await;
    let refused = run_to_end(
        server_command(RUST_LOG)
            .args(["--bind", "127.0.0.1:0"])
            .env("CHAT_GRACE", "abc"),
        PATIENCE,
    )
    .await;

    // Assert
    assert!(help.status.success(), "--help exits 0: {help:?}");
    let help_text = String::from_utf8_lossy(&help.stdout);
    for option in options {
        assert!(
            help_text.contains(option),
            "--help mentions {option}:\n{help_text}"
        );
    }
    assert!(
        help_text.contains("CHAT_GRACE"),
        "--help names the environment variables:\n{help_text}"
    );
    assert!(
        !refused.status.success(),
        "CHAT_GRACE=abc makes the binary fail: {refused:?}"
    );
    let complaint = String::from_utf8_lossy(&refused.stderr);
    assert!(
        complaint.contains("--grace") && complaint.contains("abc"),
        "the error names the option and the bad value:\n{complaint}"
    );
}

/// With `--secret` a session cookie survives a restart; with another secret it does not.
#[tokio::test]
async fn a_session_survives_a_restart_with_the_same_secret_only() {
    // Arrange
    let client = http_client();
    let mut first = RunningServer::start(&["--secret", "s3cret"]).await;
    let (cookie, _code) = create_room(&client, &first, "alice").await;
    assert_eq!(
        home_name(&client, &first, Some(&cookie)).await,
        "alice",
        "the cookie remembers the name on the server that set it"
    );
    first.stop().await;

    // Act
    let mut same = RunningServer::start(&["--secret", "s3cret"]).await;
    let after_restart = home_name(&client, &same, Some(&cookie)).await;
    let without_cookie = home_name(&client, &same, None).await;
    same.stop().await;
    let other = RunningServer::start(&["--secret", "another secret"]).await;
    let other_secret = home_name(&client, &other, Some(&cookie)).await;

    // Assert
    assert_eq!(
        after_restart, "alice",
        "same secret: the cookie still opens the session"
    );
    assert_eq!(without_cookie, "", "no cookie, no name");
    assert_eq!(
        other_secret, "",
        "another secret: the cookie counts as no session"
    );
}

// ---------------------------------------------------------------------------
// The server binary as a child process

/// `kill -s SIGNAL -- TARGET`, with the `kill` program; `-PGID` targets a group.
async fn send_signal(signal: &str, target: &str) {
    let status = Command::new("kill")
        .args(["-s", signal, "--", target])
        .status()
        .await
        .expect("run kill");
    assert!(status.success(), "kill -s {signal} -- {target}: {status}");
}

// ---------------------------------------------------------------------------
// The walkthrough script

/// The ```sh block between the README's walkthrough markers.
fn readme_walkthrough() -> String {
    format!("{}\n", readme_block("walkthrough", "sh"))
}

/// The fenced ```{language} block between the README's `<!-- {marker}:start -->`
/// and `<!-- {marker}:end -->`, without its fences.
fn readme_block(marker: &str, language: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let start = format!("<!-- {marker}:start -->");
    let end = format!("<!-- {marker}:end -->");
    let (_, after_start) = readme
        .split_once(&start)
        .unwrap_or_else(|| panic!("README.md has {start}"));
    let (section, _) = after_start
        .split_once(&end)
        .unwrap_or_else(|| panic!("README.md has {end} after {start}"));
    let (_, block) = section
        .split_once(&format!("```{language}\n"))
        .unwrap_or_else(|| panic!("a ```{language} block between the {marker} markers"));
    let (text, _) = block
        .split_once("\n```")
        .unwrap_or_else(|| panic!("the {marker} block is closed before its end marker"));
    text.to_owned()
}

/// Panics (never skips) when a program the test drives is missing.
fn require_program(program: &str) {
    let found = std::process::Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Err(error) = found {
        panic!(
            "`{program}` is needed by this test but could not be run ({error}); \
             `scripts/test` installs it (with apt-get) before running the tests"
        );
    }
}

/// A process group (a script and everything it started in the background).
/// Dropping it kills the whole group.
struct ProcessGroup {
    leader: Child,
    pgid: u32,
}

impl ProcessGroup {
    fn new(leader: Child) -> Self {
        let pgid = leader.id().expect("the group leader is running");
        Self { leader, pgid }
    }

    /// SIGTERM to the whole group; whether its leader then exited in time.
    async fn terminate(&mut self) -> bool {
        send_signal("TERM", &format!("-{}", self.pgid)).await;
        timeout(PATIENCE, self.leader.wait()).await.is_ok()
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.pgid)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.leader.start_kill();
    }
}

/// One event of Alice's stream, as the script printed it.
#[derive(Debug, Clone)]
struct SeenEvent {
    id: u64,
    event: String,
    name: String,
    text: Option<String>,
    at: String,
}

/// An event's `id`, `kind`, `name`, `text` and `at`, for comparisons.
type EventFields<'a> = (u64, &'a str, &'a str, Option<&'a str>, &'a str);

impl SeenEvent {
    fn fields(&self) -> EventFields<'_> {
        (
            self.id,
            self.event.as_str(),
            self.name.as_str(),
            self.text.as_deref(),
            self.at.as_str(),
        )
    }
}

/// What the walkthrough's output has shown so far.
#[derive(Debug, Default)]
struct Walkthrough {
    code: Option<String>,
    retry: Option<u64>,
    /// The `hello` that opens the stream, as sent.
    hello: Option<String>,
    /// Each member's name and whether they had a stream open.
    members: Option<Vec<(String, bool)>>,
    /// Bob's long poll's answer.
    poll: Option<Value>,
    events: Vec<SeenEvent>,
    /// `id:` and `event:` of the frame being read.
    pending_id: Option<u64>,
    pending_event: Option<String>,
    lines: Vec<String>,
}

impl Walkthrough {
    fn take_line(&mut self, line: &str) {
        self.lines.push(line.to_owned());
        if line.starts_with('[') {
            // The members line. Alice's stream writes to the same terminal, so an
            // event may follow the list before `echo` ends the line.
            let mut values = serde_json::Deserializer::from_str(line).into_iter::<Value>();
            let list = values
                .next()
                .and_then(Result::ok)
                .unwrap_or_else(|| panic!("the members line is JSON: {line:?}"));
            let rest = &line[values.byte_offset()..];
            let members = list
                .as_array()
                .unwrap_or_else(|| panic!("members is a JSON list: {line:?}"))
                .iter()
                .map(|member| {
                    let name = member["name"].as_str();
                    let connected = member["connected"].as_bool();
                    match (name, connected) {
                        (Some(name), Some(connected)) => (name.to_owned(), connected),
                        _ => panic!("members are {{name, connected}} objects: {line:?}"),
                    }
                })
                .collect();
            self.members = Some(members);
            if !rest.is_empty() {
                self.take_sse_line(rest);
            }
        } else if line.starts_with("{\"events\"") {
            // Bob's poll, a line of JSON; as with the members line, an event of
            // Alice's stream may follow before `echo` ends the line.
            let mut values = serde_json::Deserializer::from_str(line).into_iter::<Value>();
            let answer = values
                .next()
                .and_then(Result::ok)
                .unwrap_or_else(|| panic!("the poll's answer is JSON: {line:?}"));
            let rest = &line[values.byte_offset()..];
            self.poll = Some(answer);
            if !rest.is_empty() {
                self.take_sse_line(rest);
            }
        } else if let Some(code) = line.strip_prefix("room ") {
            self.code = Some(code.to_owned());
        } else {
            self.take_sse_line(line);
        }
    }

    fn take_sse_line(&mut self, line: &str) {
        let Some((field, value)) = line.split_once(':') else {
            return;
        };
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "retry" => self.retry = Some(value.parse().expect("numeric retry")),
            "id" => self.pending_id = Some(value.parse().expect("numeric id")),
            "event" => self.pending_event = Some(value.to_owned()),
            "data" if self.pending_event.as_deref() == Some("hello") => {
                assert_eq!(self.pending_id, None, "hello has no id: {line}");
                self.pending_event = None;
                self.hello = Some(value.to_owned());
            }
            "data" => {
                let data: Value = serde_json::from_str(value).expect("event data is JSON");
                let id = data["id"].as_u64().expect("data has a numeric id");
                let event = self.pending_event.take().expect("event: before data:");
                assert_eq!(self.pending_id.take(), Some(id), "id: matches data: {line}");
                assert_eq!(data["kind"], event.as_str(), "kind matches event: {line}");
                self.events.push(SeenEvent {
                    id,
                    event,
                    name: data["name"].as_str().expect("data has a name").to_owned(),
                    text: data["text"].as_str().map(str::to_owned),
                    at: data["at"].as_str().expect("data has `at`").to_owned(),
                });
            }
            _ => {}
        }
    }

    fn first(&self, event: &str, name: &str, text: Option<&str>) -> Option<&SeenEvent> {
        self.events.iter().find(|seen| {
            seen.event == event
                && seen.name == name
                && (text.is_none() || seen.text.as_deref() == text)
        })
    }

    fn has(&self, event: &str, name: &str, text: Option<&str>) -> bool {
        self.first(event, name, text).is_some()
    }

    fn find(&self, event: &str, name: &str, text: Option<&str>) -> SeenEvent {
        self.first(event, name, text)
            .cloned()
            .unwrap_or_else(|| panic!("no {event} event from {name} {text:?}: {self:#?}"))
    }

    fn is_complete(&self) -> bool {
        self.retry.is_some()
            && self.hello.is_some()
            && self.members.is_some()
            && self.poll.is_some()
            && self.has("join", "alice", None)
            && self.has("join", "bob", None)
            && self.has("message", "bob", Some("hello alice"))
            && self.has("message", "alice", Some("hi bob!"))
    }
}

// ---------------------------------------------------------------------------
// Small helpers

/// Why [`read_until`] stopped without a matching line.
#[derive(Debug)]
enum ReadEnd {
    Eof,
    Timeout,
    Error,
}

/// Reads lines until one matches, the output ends, or `wait` passes.
async fn read_until(
    lines: &mut Lines<BufReader<ChildStdout>>,
    wait: Duration,
    matches: impl Fn(&str) -> bool,
) -> Result<String, ReadEnd> {
    let deadline = Instant::now() + wait;
    loop {
        match timeout_at(deadline, lines.next_line()).await {
            Err(_) => return Err(ReadEnd::Timeout),
            Ok(Err(_)) => return Err(ReadEnd::Error),
            Ok(Ok(None)) => return Err(ReadEnd::Eof),
            Ok(Ok(Some(line))) if matches(&line) => return Ok(line),
            Ok(Ok(Some(_))) => {}
        }
    }
}

/// Collects a child's output in the background, so its pipe never fills.
fn drain(output: impl AsyncRead + Unpin + Send + 'static) -> Arc<Mutex<String>> {
    let log = Arc::new(Mutex::new(String::new()));
    tokio::spawn(collect_output(output, Arc::clone(&log), Arc::default()));
    log
}

fn text(log: &Mutex<String>) -> String {
    log.lock().expect("log lock").clone()
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(PATIENCE)
        .build()
        .expect("http client")
}

/// Creates a room as `name`; returns the session cookie (`name=value`) and the code.
async fn create_room(
    client: &reqwest::Client,
    server: &RunningServer,
    name: &str,
) -> (String, String) {
    let response = client
        .post(server.url("/rooms"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("name={name}"))
        .send()
        .await
        .expect("POST /rooms");
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "create a room");
    (session_cookie(&response), room_code(&response))
}

/// The value of the home page's name input, as the server pre-filled it.
async fn home_name(
    client: &reqwest::Client,
    server: &RunningServer,
    cookie: Option<&str>,
) -> String {
    let mut request = client.get(server.url("/"));
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    let response = request.send().await.expect("GET /");
    assert_eq!(response.status(), StatusCode::OK, "the home page");
    let html = response.text().await.expect("home page body");
    name_input_value(&html)
}

/// The `value` of the `<input … name="name" …>` tag.
fn name_input_value(html: &str) -> String {
    let tag = html
        .match_indices("<input")
        .map(|(start, _)| {
            let end = html[start..]
                .find('>')
                .map_or(html.len(), |end| start + end);
            &html[start..end]
        })
        .find(|tag| tag.contains(r#"name="name""#))
        .unwrap_or_else(|| panic!("the home page has a name input:\n{html}"));
    let (_, value) = tag
        .split_once(r#"value=""#)
        .unwrap_or_else(|| panic!("the name input has a value attribute: {tag}"));
    value.split('"').next().unwrap_or_default().to_owned()
}
