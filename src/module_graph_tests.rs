//! The dependency direction of Berth's top-level modules, checked: every `crate::<module>`
//! path in a module's (non-test) source is an edge, and the graph must have no cycle.
//! This test is the tool: it prints the cycle it finds and the graph's layers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module name → the modules it uses.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and its `#[cfg(test)]` module (tests may
/// reach anywhere).
fn production_source(text: &str) -> String {
    let code = text.find("#[cfg(test)]\nmod ").map_or(text, |i| &text[..i]);
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph = Graph::new();
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src");
        let first = rel.components().next().expect("component");
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        // Tests in a file of their own (`#[cfg(test)] mod tests;`, `…_tests.rs`) may
        // reach anywhere, as inline test modules may.
        let test_file = file
            .file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with("tests.rs"));
        if module == "lib" || module == "main" || test_file {
            continue;
        }
        let text = production_source(&std::fs::read_to_string(&file).expect("read"));
        let deps = graph.entry(module.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                deps.insert(name);
            }
        }
        // `use crate::{a, b}` lists.
        for (i, _) in text.match_indices("crate::{") {
            let rest = &text[i + "crate::{".len()..];
            let list = &rest[..rest.find('}').unwrap_or(0)];
            for item in list.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    deps.insert(name);
                }
            }
        }
    }
    graph
}

/// A cycle, if there is one (depth-first search with colours).
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(
        g: &Graph,
        n: &str,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_owned(), 1);
        stack.push(n.to_owned());
        for d in g.get(n).into_iter().flatten() {
            match state.get(d.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = stack.iter().position(|s| s == d).unwrap_or(0);
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(d.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(g, d, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(g, n, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn top_level_modules_import_each_other_without_cycles() {
    let g = graph();
    assert!(g.contains_key("service") && g.contains_key("meta"), "{g:?}");
    if let Some(cycle) = find_cycle(&g) {
        panic!("import cycle: {}\ngraph: {g:#?}", cycle.join(" -> "));
    }
}

#[test]
fn the_storage_and_vocabulary_layers_import_nothing_above_them() {
    let g = graph();
    let above = [
        "service",
        "api",
        "registry",
        "http",
        "cli",
        "jobs",
        "bootstrap",
    ];
    let vocabulary = [
        "aws",
        "mutability",
        "resource_tags",
        "scan_rules",
        "storage_class",
    ];
    for low in ["meta", "blobs", "oci", "iam", "auth", "scan", "vulndb"]
        .into_iter()
        .chain(vocabulary)
    {
        let bad: Vec<&String> = g[low]
            .iter()
            .filter(|d| above.contains(&d.as_str()))
            .collect();
        assert!(bad.is_empty(), "{low} imports {bad:?}");
    }
}
