//! `.aetherignore` / `.gitignore` from arbitrary bytes over a small fixed tree: selected or
//! refused with an error, never a panic; what is selected exists and is in bytewise order.
#![no_main]

use aether_core::selection::{SelectionOptions, select};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    // The first byte says which ignore file the rest becomes.
    let Some((&which, rules)) = input.split_first() else { return };
    let name = if which % 2 == 0 { ".aetherignore" } else { ".gitignore" };
    let Ok(dir) = tempfile::tempdir() else { return };
    let root = dir.path();
    for (path, text) in [("package.json", "{}"), ("src/index.js", "1"), ("src/lib/a.js", "2"), ("README.md", "3")] {
        let path = root.join(path);
        if path.parent().is_some_and(|p| std::fs::create_dir_all(p).is_err()) || std::fs::write(&path, text).is_err() {
            return;
        }
    }
    if std::fs::write(root.join(name), rules).is_err() {
        return;
    }
    let options = SelectionOptions { root: root.to_owned(), node_modules: None, exclude: Vec::new() };
    let Ok(selection) = select(&options) else { return };
    let paths: Vec<&str> = selection.entries.iter().map(|entry| entry.archive_path.as_str()).collect();
    assert!(paths.windows(2).all(|pair| pair[0].as_bytes() < pair[1].as_bytes()), "{paths:?}");
});
