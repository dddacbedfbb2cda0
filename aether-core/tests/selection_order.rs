#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The streaming selector against the `ignore` crate's own directory walker: on random trees with
//! random `.gitignore` and `.aetherignore` files, both must select the same paths, and the
//! selector must yield them already sorted bytewise.

use std::fs;
use std::path::Path;

use aether_core::selection::{SelectionOptions, select};
use ignore::WalkBuilder;
use ignore::gitignore::GitignoreBuilder;
use proptest::prelude::*;

/// Names chosen to collide in sort order (`a` < `a-b` < `a.js` < `a/`) and to match the rules.
const NAMES: [&str; 8] = ["a", "a-b", "a.js", "b", "b.log", "c", "keep.log", ".git"];
const RULES: [&str; 13] = [
    "*.log",
    "!keep.log",
    "b/",
    "/a",
    "a-b",
    "**/c",
    "a/b*",
    "*.js",
    "!a.js",
    "c/",
    "node_modules/a",
    "node_modules/**/b.log",
    "!node_modules/a",
];

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap().to_str().unwrap().to_owned()
}

/// What the `ignore` crate's walker selects with the same rules: the source tree with nested
/// ignore files, then `node_modules` with only the root `.aetherignore`, `.git` nowhere.
fn reference(root: &Path) -> Vec<String> {
    let mut paths = Vec::new();
    let top = root.join("node_modules");
    let skip_top = top.clone();
    let sources = WalkBuilder::new(root)
        .standard_filters(false)
        .hidden(false)
        .git_ignore(true)
        .require_git(false)
        .add_custom_ignore_filename(".aetherignore")
        .filter_entry(move |e| e.file_name() != ".git" && e.path() != skip_top)
        .build();
    for entry in sources {
        let entry = entry.unwrap();
        if entry.depth() > 0 {
            paths.push(relative(root, entry.path()));
        }
    }
    if top.is_dir() {
        let mut builder = GitignoreBuilder::new(root);
        if root.join(".aetherignore").is_file() {
            assert!(builder.add(root.join(".aetherignore")).is_none());
        }
        let rules = builder.build().unwrap();
        let walk = WalkBuilder::new(&top)
            .standard_filters(false)
            .hidden(false)
            .filter_entry(move |e| {
                let is_dir = e.file_type().is_some_and(|t| t.is_dir());
                e.file_name() != ".git" && !rules.matched_path_or_any_parents(e.path(), is_dir).is_ignore()
            })
            .build();
        for entry in walk {
            paths.push(relative(root, entry.unwrap().path()));
        }
    }
    paths.sort();
    paths
}

/// Files as indices into `NAMES` (`usize::MAX` = `node_modules`), and ignore files as
/// (directory index among the created ones, `.aetherignore`?, indices into `RULES`).
type Spec = (Vec<Vec<usize>>, Vec<(usize, bool, Vec<usize>)>);

fn tree() -> impl Strategy<Value = Spec> {
    let path = proptest::collection::vec(0..NAMES.len(), 1..4);
    let files = proptest::collection::vec((any::<bool>(), path), 1..24).prop_map(|v| {
        v.into_iter()
            .map(|(in_node_modules, mut p)| {
                if in_node_modules {
                    p.insert(0, usize::MAX);
                }
                p
            })
            .collect()
    });
    let ignores =
        proptest::collection::vec((0..3usize, any::<bool>(), proptest::collection::vec(0..RULES.len(), 1..7)), 1..6);
    (files, ignores)
}

fn build((files, ignores): &Spec, root: &Path) {
    let mut dirs = vec![root.to_path_buf()];
    for parts in files {
        let rel: Vec<&str> = parts.iter().map(|&i| if i == usize::MAX { "node_modules" } else { NAMES[i] }).collect();
        let path = root.join(rel.join("/"));
        // A path whose parent is already a file (or whose name is a directory) is skipped.
        if fs::create_dir_all(path.parent().unwrap()).is_ok() && fs::write(&path, "x").is_ok() {
            dirs.push(path.parent().unwrap().to_path_buf());
        }
    }
    for (dir, aether, rules) in ignores {
        let dir = &dirs[dir % dirs.len()];
        let name = if *aether { ".aetherignore" } else { ".gitignore" };
        let body: String = rules.iter().map(|&r| format!("{}\n", RULES[r])).collect();
        fs::write(dir.join(name), body).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn selects_what_the_ignore_walker_selects_in_bytewise_order(spec in tree()) {
        let dir = tempfile::tempdir().unwrap();
        build(&spec, dir.path());
        let root = fs::canonicalize(dir.path()).unwrap();
        let options = SelectionOptions { root: root.clone(), node_modules: None, exclude: vec![] };
        let selected: Vec<String> = select(&options).unwrap().entries.into_iter().map(|e| e.archive_path).collect();
        prop_assert_eq!(selected, reference(&root));
    }
}

#[test]
fn a_directory_sorts_before_its_siblings_but_its_contents_after_them() {
    let dir = tempfile::tempdir().unwrap();
    for p in ["es/index.js", "es-abstract/index.js", "es.js", "es0"] {
        let path = dir.path().join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, "x").unwrap();
    }
    let options = SelectionOptions { root: dir.path().to_path_buf(), node_modules: None, exclude: vec![] };
    let paths: Vec<String> = select(&options).unwrap().entries.into_iter().map(|e| e.archive_path).collect();
    assert_eq!(paths, ["es", "es-abstract", "es-abstract/index.js", "es.js", "es/index.js", "es0"]);
}

#[test]
fn an_invalid_nested_ignore_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("src")).unwrap();
    fs::write(dir.path().join("src/.gitignore"), "a{b\n").unwrap();
    let options = SelectionOptions { root: dir.path().to_path_buf(), node_modules: None, exclude: vec![] };
    let err = select(&options).unwrap_err();
    assert!(err.to_string().contains("src/.gitignore") || format!("{err:?}").contains("src/.gitignore"), "{err:?}");
}
