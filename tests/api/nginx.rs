//! nginx of the test's own, as the proxy tests and the browser tests put it in
//! front of the server: the hostile reverse proxy of corporate networks, and
//! one that holds event streams back.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::helpers::{TempDir, free_port, wait_for_port};

/// nginx of the test's own: foreground, its own prefix directory and
/// configuration, a free loopback port; killed by PID when dropped.
pub struct Nginx {
    child: Child,
    /// Where clients connect, e.g. `http://127.0.0.1:PORT`.
    pub base: String,
    port: u16,
    /// Its prefix: configuration, logs, temporary files.
    dir: TempDir,
}

/// What every test proxy does with a request, whatever else it does: no
/// WebSockets, the browser's own `Host` passed on (so that its `Origin`
/// matches), and a header naming the configuration, so that a test can tell
/// when a reload has taken effect.
fn location(name: &str, upstream: SocketAddr, rules: &str) -> String {
    format!(
        r#"
    location / {{
      # No WebSockets here.
      if ($http_upgrade) {{ return 403; }}
      proxy_pass http://{upstream};
      proxy_set_header Host $http_host;
      add_header X-Test-Proxy {name} always;
{rules}
    }}"#
    )
}

/// Configured the way hostile networks are: buffering stays on (the
/// default), idle upstreams are cut after 5 s.
fn hostile_location(upstream: SocketAddr) -> String {
    location("hostile", upstream, "      proxy_read_timeout 5s;")
}

/// Holds event streams back: buffers every response whatever it asks for.
fn holding_location(upstream: SocketAddr) -> String {
    let rules = "      proxy_buffering on;\n      proxy_ignore_headers X-Accel-Buffering;";
    location("holding", upstream, rules)
}

impl Nginx {
    /// A reverse proxy to `upstream` configured the way hostile networks are.
    pub async fn hostile(upstream: SocketAddr) -> Self {
        Self::start(&hostile_location(upstream)).await
    }

    /// A proxy that holds event streams back, as antivirus web filters and
    /// scanning proxies do: the hostile one, but ignoring our
    /// `X-Accel-Buffering: no`, so it buffers (and compresses) a response until
    /// it ends, and with nginx's default idle timeout (60 s) the heartbeats keep
    /// a stream from ever ending. Complete responses pass at once.
    pub async fn holding(upstream: SocketAddr) -> Self {
        Self::start(&holding_location(upstream)).await
    }

    /// Reloads as the hostile proxy, which passes streams on (as when a
    /// filter is switched off), and waits until new requests get it. Requests
    /// already open stay with the old configuration until they end.
    pub async fn stop_holding(&self, upstream: SocketAddr) {
        write_config(&self.dir, self.port, &hostile_location(upstream));
        let pid = self.child.id().expect("nginx is running");
        let status = Command::new("kill")
            .args(["-s", "HUP", &pid.to_string()])
            .status()
            .await
            .expect("run kill");
        assert!(status.success(), "kill -s HUP {pid}: {status}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let answer = reqwest::Client::new()
                .get(format!("{}/healthz", self.base))
                .send()
                .await;
            let name = answer
                .ok()
                .and_then(|a| a.headers().get("x-test-proxy").cloned());
            if name.is_some_and(|name| name == "hostile") {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nginx did not reload:\n{}",
                std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The round-robin load balancer docs/scaling.md documents, over
    /// `instances` (run with `--trust-proxy`): the configuration is the one
    /// `scripts/cluster --nginx-conf` writes from the doc, ports replaced, so
    /// the doc's is the one tested.
    pub async fn load_balancer(instances: &[SocketAddr]) -> Self {
        let dir = TempDir::new("nginx");
        let port = free_port();
        let ports: Vec<String> = instances.iter().map(|i| i.port().to_string()).collect();
        let written = std::process::Command::new(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster"),
        )
        .arg("--nginx-conf")
        .env("CLUSTER_PORT", port.to_string())
        .env("CLUSTER_INSTANCE_PORTS", ports.join(" "))
        .output()
        .expect("run scripts/cluster --nginx-conf");
        assert!(
            written.status.success(),
            "scripts/cluster --nginx-conf: {}",
            String::from_utf8_lossy(&written.stderr)
        );
        std::fs::write(dir.path().join("nginx.conf"), &written.stdout).expect("write nginx.conf");
        Self::run(dir, port).await
    }

    /// nginx with `locations` (and any other `server` directives) inside its one
    /// `server` block.
    pub async fn start(locations: &str) -> Self {
        let dir = TempDir::new("nginx");
        let port = free_port();
        write_config(&dir, port, locations);
        Self::run(dir, port).await
    }

    /// nginx with the `nginx.conf` in `dir`, which listens on `port`.
    async fn run(dir: TempDir, port: u16) -> Self {
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|path| std::path::Path::new(path).exists())
            .expect("nginx is missing: `scripts/test` installs the Debian package nginx-light");
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start nginx");
        assert!(
            wait_for_port(port, Duration::from_secs(10)).await,
            "nginx did not start listening:\n{}",
            std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
        );
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            port,
            dir,
        }
    }
}

/// Writes `nginx.conf` in `dir`: listening on `port`, with `locations` inside
/// its one `server` block, and compressing every type for every client that
/// accepts it.
fn write_config(dir: &TempDir, port: u16, locations: &str) {
    let prefix = dir.path().display();
    let config = format!(
        r#"
worker_processes 1;
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 512; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  # Compress every type, for every client that accepts it.
  gzip on;
  gzip_types *;
  gzip_min_length 1;
  gzip_proxied any;
  server {{
    listen 127.0.0.1:{port};
{locations}
  }}
}}
"#
    );
    std::fs::write(dir.path().join("nginx.conf"), config).expect("write nginx.conf");
}

impl Drop for Nginx {
    /// SIGTERM, so that the master takes its worker down with it (a killed
    /// master leaves its worker running, still listening), then SIGKILL if
    /// it has not gone within a second.
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-s", "TERM", &pid.to_string()])
                .status();
            for _ in 0..100 {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = self.child.start_kill();
    }
}
