//! nginx of the test's own, as the proxy tests and the browser tests put it in
//! front of the server: the hostile reverse proxy of corporate networks, and
//! one that holds event streams back.

#![allow(dead_code)]

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
    _dir: TempDir,
}

impl Nginx {
    /// A reverse proxy to `upstream` configured the way hostile networks are.
    pub async fn hostile(upstream: std::net::SocketAddr) -> Self {
        let locations = format!(
            r#"
    location / {{
      # No WebSockets here.
      if ($http_upgrade) {{ return 403; }}
      proxy_pass http://{upstream};
      # The browser's own Host, so that its Origin matches.
      proxy_set_header Host $http_host;
      # Buffering stays on (the default); idle upstreams are cut after 5 s.
      proxy_read_timeout 5s;
    }}"#
        );
        Self::start(&locations).await
    }

    /// A proxy that holds event streams back, as antivirus web filters and
    /// scanning proxies do: the hostile one, but ignoring our
    /// `X-Accel-Buffering: no`, so it buffers (and compresses) a response until
    /// it ends, and with nginx's default idle timeout (60 s) the heartbeats keep
    /// a stream from ever ending. Complete responses pass at once.
    pub async fn holding(upstream: std::net::SocketAddr) -> Self {
        let locations = format!(
            r#"
    location / {{
      # No WebSockets here.
      if ($http_upgrade) {{ return 403; }}
      proxy_pass http://{upstream};
      # The browser's own Host, so that its Origin matches.
      proxy_set_header Host $http_host;
      # Buffer every response, whatever it asks for.
      proxy_buffering on;
      proxy_ignore_headers X-Accel-Buffering;
    }}"#
        );
        Self::start(&locations).await
    }

    /// nginx with `locations` (and any other `server` directives) inside its one
    /// `server` block.
    pub async fn start(locations: &str) -> Self {
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|path| std::path::Path::new(path).exists())
            .expect("nginx is missing: `scripts/test` installs the Debian package nginx-light");
        let dir = TempDir::new("nginx");
        let port = free_port();
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
        let config_path = dir.path().join("nginx.conf");
        std::fs::write(&config_path, config).expect("write nginx.conf");
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&config_path)
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
            _dir: dir,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
