//! No import circle among the files of `src/` and `crates/core/src/`: a file may use another only
//! if that one does not, through any chain of uses, use it back. This keeps the layers honest — the
//! core at the bottom, the kinds below their registries, the commands on top — where a reader's
//! eye would miss a circle of fifteen files.
//!
//! Every file is parsed (syn); every path it names — `use` trees, paths in code, types and
//! patterns, macro invocations, and `crate::…`/`super::…` paths inside macro arguments — is
//! resolved to the file that defines what it names, following `pub use` re-exports to their
//! origin (so `crate::aws::Accounts` counts as a use of `aws/accounts.rs`, not of `aws/mod.rs`).
//! Test modules count too: a circle through a test is still a circle. A `mod x;` declaration is
//! not a use.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// A module path from a crate root: `["cutover", "aws", "accounts"]`.
type ModPath = Vec<String>;

/// One source file: its module path, what its `use` items bind, what it re-exports, and every
/// path it names (with the line, for the report).
#[derive(Default)]
struct FileInfo {
    module: ModPath,
    /// Names in scope from `use` items (and child modules): name → absolute path.
    bindings: BTreeMap<String, ModPath>,
    /// Glob imports: absolute module paths whose public names are in scope.
    globs: Vec<ModPath>,
    /// Names this file defines (items, inline modules, macros).
    defines: BTreeSet<String>,
    /// Paths named, as written, with their line and how many inline modules (`mod tests { … }`)
    /// deep they are written (a `super` there first leaves those).
    named: Vec<(Vec<String>, usize, usize)>,
}

struct Graph {
    root: PathBuf,
    files: BTreeMap<PathBuf, FileInfo>,
    by_module: BTreeMap<ModPath, PathBuf>,
    /// `#[macro_export]` macros by name: they live at their crate's root in paths.
    macros: BTreeMap<(String, String), PathBuf>,
    /// External crates that are ours: `cutover_core` as the `cutover` crate names it.
    crates: BTreeSet<String>,
}

/// Collects a file's uses and named paths.
struct Collector<'a> {
    info: &'a mut FileInfo,
    depth: usize,
}

fn idents(path: &syn::Path) -> Vec<String> {
    path.segments.iter().map(|s| s.ident.to_string()).collect()
}

/// Flattens a `use` tree into (binding name, path), globs as ("*", path).
fn use_tree(prefix: &mut Vec<String>, tree: &syn::UseTree, out: &mut Vec<(String, Vec<String>)>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_tree(prefix, &p.tree, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let name = n.ident.to_string();
            if name == "self" {
                out.push((prefix.last().cloned().unwrap_or_default(), prefix.clone()));
            } else {
                let mut p = prefix.clone();
                p.push(name.clone());
                out.push((name, p));
            }
        }
        syn::UseTree::Rename(r) => {
            let mut p = prefix.clone();
            if r.ident != "self" {
                p.push(r.ident.to_string());
            }
            out.push((r.rename.to_string(), p));
        }
        syn::UseTree::Glob(_) => out.push(("*".into(), prefix.clone())),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                use_tree(prefix, t, out);
            }
        }
    }
}

/// `crate :: a :: b` (or `super ::`, `self ::`, `$crate ::`) sequences inside macro arguments,
/// which syn leaves unparsed.
fn token_paths(tokens: TokenStream, line: usize, depth: usize, out: &mut Vec<(Vec<String>, usize, usize)>) {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let mut i = 0;
    while i < trees.len() {
        if let TokenTree::Group(g) = &trees[i] {
            token_paths(g.stream(), line, depth, out);
        }
        if let TokenTree::Ident(id) = &trees[i] {
            let first = id.to_string();
            if matches!(first.as_str(), "crate" | "super" | "self") {
                let mut path = vec![first];
                let mut j = i + 1;
                while j + 2 < trees.len() + 1 {
                    let colons = matches!((trees.get(j), trees.get(j + 1)), (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b))) if a.as_char() == ':' && b.as_char() == ':');
                    match (colons, trees.get(j + 2)) {
                        (true, Some(TokenTree::Ident(next))) => {
                            path.push(next.to_string());
                            j += 3;
                        }
                        _ => break,
                    }
                }
                if path.len() > 1 {
                    out.push((path, line, depth));
                }
                i = j.max(i + 1);
                continue;
            }
        }
        i += 1;
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut out = Vec::new();
        use_tree(&mut Vec::new(), &u.tree, &mut out);
        let line = u.use_token.span.start().line;
        for (name, path) in out {
            self.info.named.push((path.clone(), line, self.depth));
            if self.depth == 0 {
                if name == "*" {
                    self.info.globs.push(path);
                } else {
                    self.info.bindings.insert(name, path);
                }
            }
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segs = idents(p);
        if !segs.is_empty() {
            let line = p.segments[0].ident.span().start().line;
            self.info.named.push((segs, line, self.depth));
        }
        syn::visit::visit_path(self, p);
    }

    /// `pub(super)` and `pub(crate)` name modules only to say who may see an item.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        let line = m.path.segments[0].ident.span().start().line;
        token_paths(m.tokens.clone(), line, self.depth, &mut self.info.named);
        syn::visit::visit_macro(self, m);
    }

    fn visit_item_macro(&mut self, m: &'ast syn::ItemMacro) {
        if let Some(ident) = &m.ident {
            self.info.defines.insert(ident.to_string());
        }
        syn::visit::visit_item_macro(self, m);
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        self.info.defines.insert(m.ident.to_string());
        self.depth += 1;
        syn::visit::visit_item_mod(self, m);
        self.depth -= 1;
    }

    fn visit_item(&mut self, item: &'ast syn::Item) {
        if self.depth == 0 {
            let name = match item {
                syn::Item::Const(i) => Some(&i.ident),
                syn::Item::Enum(i) => Some(&i.ident),
                syn::Item::Fn(i) => Some(&i.sig.ident),
                syn::Item::Static(i) => Some(&i.ident),
                syn::Item::Struct(i) => Some(&i.ident),
                syn::Item::Trait(i) => Some(&i.ident),
                syn::Item::Type(i) => Some(&i.ident),
                syn::Item::Union(i) => Some(&i.ident),
                _ => None,
            };
            if let Some(n) = name {
                self.info.defines.insert(n.to_string());
            }
        }
        syn::visit::visit_item(self, item);
    }
}

/// The module path of a file under a crate's `src/`.
fn module_of(krate: &str, src: &Path, file: &Path) -> ModPath {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs").to_string();
    if stem != "mod" && stem != "lib" {
        parts.push(stem);
    }
    let mut m = vec![krate.to_string()];
    m.extend(parts);
    m
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read a source folder").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

impl Graph {
    fn load(root: &Path, crates: &[(&str, &str)]) -> Graph {
        let mut g = Graph {
            root: root.to_path_buf(),
            files: BTreeMap::new(),
            by_module: BTreeMap::new(),
            macros: BTreeMap::new(),
            crates: crates.iter().map(|(k, _)| k.to_string()).collect(),
        };
        for (krate, src) in crates {
            let src = root.join(src);
            let mut files = Vec::new();
            rust_files(&src, &mut files);
            for file in files {
                // The binary's own root is a crate of its own that names the library by its name.
                if file.file_name().is_some_and(|n| n == "main.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&file).expect("read a source file");
                let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                let mut info = FileInfo { module: module_of(krate, &src, &file), ..FileInfo::default() };
                for item in &ast.items {
                    if let syn::Item::Macro(m) = item
                        && let Some(ident) = &m.ident
                        && m.attrs.iter().any(|a| a.path().is_ident("macro_export"))
                    {
                        g.macros.insert((krate.to_string(), ident.to_string()), file.clone());
                    }
                }
                Collector { info: &mut info, depth: 0 }.visit_file(&ast);
                g.by_module.insert(info.module.clone(), file.clone());
                g.files.insert(file, info);
            }
        }
        g
    }

    /// `path` as written in `file`, made absolute: `crate::`, `super::`, `self::`, a name a `use`
    /// bound, a child module, or one of our crates. `None` for anything else (std, a dependency,
    /// a local item).
    fn absolute(&self, file: &FileInfo, path: &[String]) -> Option<ModPath> {
        self.absolute_at(file, path, 0)
    }

    /// [`Graph::absolute`] for a path written `depth` inline modules deep: there `self` and the
    /// first `depth` `super`s stay inside the file.
    fn absolute_at(&self, file: &FileInfo, path: &[String], depth: usize) -> Option<ModPath> {
        let krate = file.module[0].clone();
        let first = path.first()?;
        if depth > 0 {
            match first.as_str() {
                "self" => return None,
                "super" => {
                    let supers = path.iter().take_while(|s| *s == "super").count();
                    if supers <= depth {
                        return None;
                    }
                    let mut rest = vec!["super".to_string(); supers - depth];
                    rest.extend(path[supers..].iter().cloned());
                    return self.absolute_at(file, &rest, 0);
                }
                _ => {}
            }
        }
        let module_dir = |m: &ModPath| -> ModPath { m.clone() };
        let mut base: ModPath = match first.as_str() {
            "crate" | "$crate" => vec![krate],
            "self" => module_dir(&file.module),
            "super" => {
                let mut m = file.module.clone();
                let mut rest = path;
                while rest.first().is_some_and(|s| s == "super") {
                    m.pop();
                    rest = &rest[1..];
                }
                let mut full = m;
                full.extend(rest.iter().cloned());
                return Some(full);
            }
            name if self.crates.contains(name) => vec![name.to_string()],
            name => {
                if let Some(bound) = file.bindings.get(name) {
                    let mut full = self.absolute(file, bound)?;
                    full.extend(path[1..].iter().cloned());
                    return Some(full);
                }
                let mut child = file.module.clone();
                child.push(name.to_string());
                if self.by_module.contains_key(&child) {
                    child.extend(path[1..].iter().cloned());
                    return Some(child);
                }
                return None;
            }
        };
        base.extend(path[1..].iter().cloned());
        Some(base)
    }

    /// The file that defines what the absolute `path` names, following re-exports.
    fn resolve(&self, path: &[String], depth: usize) -> Option<PathBuf> {
        if depth > 16 || path.is_empty() {
            return None;
        }
        // A macro at a crate root: `crate::client!` is written `crate::client`.
        if path.len() == 2
            && let Some(f) = self.macros.get(&(path[0].clone(), path[1].clone()))
        {
            return Some(f.clone());
        }
        // The longest prefix that is a module file.
        let mut n = path.len();
        while n > 0 && !self.by_module.contains_key(&path[..n]) {
            n -= 1;
        }
        if n == 0 {
            return None;
        }
        let file = &self.by_module[&path[..n]];
        let info = &self.files[file];
        let Some(item) = path.get(n) else { return Some(file.clone()) };
        if info.defines.contains(item) {
            return Some(file.clone());
        }
        if let Some(bound) = info.bindings.get(item) {
            let mut target = self.absolute(info, bound)?;
            target.extend(path[n + 1..].iter().cloned());
            return self.resolve(&target, depth + 1).or_else(|| Some(file.clone()));
        }
        for glob in &info.globs {
            let Some(mut target) = self.absolute(info, glob) else { continue };
            target.extend(path[n..].iter().cloned());
            if let Some(f) = self.resolve(&target, depth + 1)
                && f != *file
            {
                return Some(f);
            }
        }
        Some(file.clone())
    }

    /// Every file → file edge, with where it is named.
    fn edges(&self) -> BTreeMap<(PathBuf, PathBuf), Vec<usize>> {
        let mut edges: BTreeMap<(PathBuf, PathBuf), Vec<usize>> = BTreeMap::new();
        for (file, info) in &self.files {
            for (path, line, depth) in &info.named {
                let Some(abs) = self.absolute_at(info, path, *depth) else { continue };
                let Some(target) = self.resolve(&abs, 0) else { continue };
                if target != *file {
                    edges.entry((file.clone(), target)).or_default().push(*line);
                }
            }
        }
        edges
    }
}

/// Strongly connected components of more than one file (Tarjan).
fn circles(nodes: &[PathBuf], edges: &BTreeMap<(PathBuf, PathBuf), Vec<usize>>) -> Vec<Vec<PathBuf>> {
    struct State<'a> {
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        on: BTreeSet<&'a PathBuf>,
        stack: Vec<&'a PathBuf>,
        next: usize,
        out: Vec<Vec<PathBuf>>,
    }
    fn strong<'a>(v: &'a PathBuf, adj: &BTreeMap<&'a PathBuf, Vec<&'a PathBuf>>, s: &mut State<'a>) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on.insert(v);
        for w in adj.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                strong(w, adj, s);
                let lw = s.low[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(lw));
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                comp.push(w.clone());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut adj: BTreeMap<&PathBuf, Vec<&PathBuf>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        adj.entry(a).or_default().push(b);
    }
    let mut s = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        on: BTreeSet::new(),
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in nodes {
        if !s.index.contains_key(v) {
            strong(v, &adj, &mut s);
        }
    }
    s.out
}

#[test]
fn no_file_of_src_imports_one_that_imports_it_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let graph = Graph::load(root, &[("cutover", "src"), ("cutover_core", "crates/core/src")]);
    let edges = graph.edges();
    let nodes: Vec<PathBuf> = graph.files.keys().cloned().collect();
    let found = circles(&nodes, &edges);
    let rel = |p: &Path| p.strip_prefix(&graph.root).unwrap_or(p).display().to_string();
    let mut report = String::new();
    for comp in &found {
        report.push_str(&format!("a circle of {} files:\n", comp.len()));
        for ((a, b), lines) in &edges {
            if comp.contains(a) && comp.contains(b) {
                report.push_str(&format!("  {} → {} (line {})\n", rel(a), rel(b), lines[0]));
            }
        }
    }
    assert!(found.is_empty(), "{report}");
    // The check sees what it must: the engine uses the ports, the lib root re-exports the core.
    let engine = root.join("crates/core/src/rollout/engine.rs");
    let ports = root.join("crates/core/src/rollout/ports.rs");
    assert!(edges.contains_key(&(engine, ports)), "the checker lost track of `use crate::rollout::ports::…`");
}

/// The check itself: a circle through a re-export and a macro's argument is found.
#[test]
fn a_circle_through_a_reexport_is_found() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod a;\npub mod b;\n").unwrap();
    std::fs::write(src.join("a/mod.rs"), "mod inner;\npub use inner::Thing;\n").unwrap();
    std::fs::write(src.join("a/inner.rs"), "pub struct Thing;\nfn f() { assert!(crate::b::other()); }\n").unwrap();
    std::fs::write(src.join("b.rs"), "use crate::a::Thing;\npub fn other() -> bool { let _ = Thing; true }\n").unwrap();
    let graph = Graph::load(dir.path(), &[("x", "src")]);
    let edges = graph.edges();
    let nodes: Vec<PathBuf> = graph.files.keys().cloned().collect();
    let found = circles(&nodes, &edges);
    assert_eq!(found.len(), 1, "{:?}", edges.keys().collect::<Vec<_>>());
    assert_eq!(found[0], vec![src.join("a/inner.rs"), src.join("b.rs")]);
}
