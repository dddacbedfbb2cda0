//! Small Node apps packed into real artifacts, for the tests that run releases with `node`.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

use aether_core::digest::sha256_hex;
use aether_core::pack::{PackOptions, pack};
use aether_core::selection::{SelectionOptions, Walker};

/// An HTTP server on `$PORT` that answers `<tag> <NODE_ENV>`, prints `said <query>` for
/// `/say?<query>`, and prints `<tag> listening on <port>` once it listens.
pub fn server_js(tag: &str) -> String {
    format!(
        r#"const http = require("http");
const port = Number(process.env.PORT);
http.createServer((req, res) => {{
  if (req.url.startsWith("/say")) console.log("said " + req.url.slice(5));
  res.end("{tag} " + process.env.NODE_ENV);
}}).listen(port, "127.0.0.1", () => console.log("{tag} listening on " + port));
"#
    )
}

/// Packs an app made of `server.js` and a package.json whose start script runs it; returns the
/// artifact's bytes and digest.
pub fn pack_app(server_js: &str) -> (Vec<u8>, String) {
    let source = tempfile::tempdir().unwrap();
    let package = r#"{"name":"web","version":"1.0.0","scripts":{"start":"node server.js"}}"#;
    std::fs::write(source.path().join("package.json"), package).unwrap();
    std::fs::write(source.path().join("server.js"), server_js).unwrap();
    pack_dir(source.path())
}

fn pack_dir(root: &Path) -> (Vec<u8>, String) {
    let options = SelectionOptions { root: root.to_path_buf(), node_modules: None, exclude: Vec::new() };
    let walker = Walker::new(&options).unwrap();
    let mut bytes = Vec::new();
    let options = PackOptions { threads: 1, ..PackOptions::default() };
    let digest = pack(walker, &options, &mut bytes, std::io::sink(), &mut |_| {}).unwrap().summary.digest;
    assert_eq!(digest, sha256_hex(&bytes), "the summary's digest is the blob's");
    (bytes, digest)
}
