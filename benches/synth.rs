//! A deterministic stand-in for the fixture's installed `node_modules`, for machines that cannot
//! reach the npm registry.
//!
//! The shape follows what `npm ci --omit=dev` installs for `fixture/package-lock.json`: one icon
//! package with tens of thousands of tiny files, one cloud SDK with large API files, a few
//! utility libraries with thousands of modules, hundreds of small packages, a few dozen large
//! minified bundles, nested `node_modules` and `.bin` symlinks. Text is generated from a
//! JavaScript-like vocabulary so it compresses roughly like real code; a fixed seed makes every
//! byte reproducible.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

/// What was written, for the caller to print.
#[derive(Debug, Default, Clone, Copy)]
pub struct SynthStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
}

/// SplitMix64: tiny and fast; statistical quality only has to make text that compresses like code.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// Log-uniform in `[lo, hi]`: package sizes and file sizes are heavy-tailed.
    fn log_uniform(&mut self, lo: usize, hi: usize) -> usize {
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        let (lo_f, hi_f) = ((lo.max(1)) as f64, (hi.max(lo + 1)) as f64);
        (lo_f * (hi_f / lo_f).powf(unit)) as usize
    }

    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const WORDS: &[&str] = &[
    "function",
    "return",
    "const",
    "let",
    "var",
    "if",
    "else",
    "for",
    "while",
    "this",
    "module",
    "exports",
    "require",
    "undefined",
    "null",
    "true",
    "false",
    "Object",
    "Array",
    "prototype",
    "length",
    "value",
    "options",
    "callback",
    "error",
    "result",
    "index",
    "key",
    "props",
    "state",
    "default",
    "import",
    "from",
    "export",
    "async",
    "await",
    "new",
    "throw",
    "typeof",
    "instanceof",
    "Promise",
    "resolve",
    "reject",
    "then",
    "catch",
    "push",
    "call",
    "apply",
    "bind",
    "arguments",
    "string",
    "number",
    "object",
    "get",
    "set",
    "has",
    "map",
    "filter",
    "reduce",
    "forEach",
    "keys",
    "assign",
    "create",
    "defineProperty",
    "enumerable",
    "configurable",
    "writable",
    "node",
    "type",
    "name",
    "path",
    "data",
    "buffer",
    "start",
    "end",
    "context",
    "element",
    "children",
    "style",
    "className",
    "parent",
    "source",
    "target",
    "event",
    "listener",
    "emit",
    "handler",
    "request",
    "response",
    "params",
    "config",
];
const PUNCT: &[&str] =
    &["(", ")", " {", "}", ";", ".", ", ", " = ", " === ", " && ", " || ", "[", "]", ": ", "'", " => "];
const SHORT: &[&str] = &["e", "t", "n", "r", "o", "i", "a", "s", "u", "c", "l", "f", "d", "p", "h", "m"];
const DIRS: &[&str] = &["lib", "dist", "esm", "cjs", "src", "build", "lib/internal", "dist/umd", "types", "utils"];
const EXTS: &[&str] = &["js", "js", "js", "js", "js", "js", "js", "d.ts", "d.ts", "js.map", "mjs", "cjs", "json"];
/// Share of tokens that repeat a recent span; tuned so the tree compresses about as well as the
/// fixture's real `node_modules` under gzip -6.
const REPEAT_PERCENT: usize = 15;
const LICENSE: &str = "MIT License\n\nPermission is hereby granted, free of charge, to any person obtaining a copy \
of this software, to deal in the Software without restriction.\n\nTHE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT \
WARRANTY OF ANY KIND.\n";

/// Generates the tree into `dir`, which must not contain a `node_modules` yet.
pub fn generate(dir: &Path, seed: u64) -> Result<SynthStats> {
    let node_modules = dir.join("node_modules");
    anyhow::ensure!(!node_modules.exists(), "{} already exists; remove it first", node_modules.display());
    let mut builder = Generator { rng: Rng(seed), stats: SynthStats::default() };
    builder.mkdir(dir)?;
    builder.write(&dir.join("package.json"), b"{\n  \"name\": \"pack-bench-fixture\",\n  \"private\": true\n}\n")?;
    let server = builder.rng_text(4_000, false);
    builder.write(&dir.join("server.js"), &server)?;
    builder.mkdir(&node_modules)?;
    builder.icons(&node_modules.join("@synthetic-ui/icons"))?;
    builder.package(&node_modules.join("cloud-sdk"), Shape { files: 2_300, lo: 1_000, hi: 200_000, bundles: 4 })?;
    for (i, files) in [5_100, 3_700, 2_300, 2_800].into_iter().enumerate() {
        builder
            .package(&node_modules.join(format!("util-heavy-{i}")), Shape { files, lo: 300, hi: 8_000, bundles: 0 })?;
    }
    builder.small_packages(&node_modules)?;
    Ok(builder.stats)
}

/// How one package's files are drawn.
#[derive(Debug, Clone, Copy)]
struct Shape {
    files: usize,
    lo: usize,
    hi: usize,
    /// Large minified single-line files, as bundlers ship in `dist/`.
    bundles: usize,
}

#[derive(Debug)]
struct Generator {
    rng: Rng,
    stats: SynthStats,
}

impl Generator {
    fn mkdir(&mut self, dir: &Path) -> Result<()> {
        let missing = dir.ancestors().take_while(|d| !d.is_dir()).count();
        if missing > 0 {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            self.stats.dirs += missing as u64;
        }
        Ok(())
    }

    fn write(&mut self, path: &Path, bytes: &[u8]) -> Result<()> {
        if let Some(parent) = path.parent() {
            self.mkdir(parent)?;
        }
        fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        self.stats.files += 1;
        self.stats.bytes += bytes.len() as u64;
        Ok(())
    }

    /// Two copies (CommonJS and ESM) of ~21k tiny generated components, like an icon set.
    fn icons(&mut self, dir: &Path) -> Result<()> {
        self.package_meta(dir, "@synthetic-ui/icons")?;
        for flavour in ["", "esm/"] {
            for i in 0..21_000 {
                let len = self.rng.log_uniform(200, 700);
                let text = self.rng_text(len, false);
                self.write(&dir.join(format!("{flavour}Icon{i:05}.js")), &text)?;
            }
        }
        Ok(())
    }

    /// ~360 ordinary packages; some carry large bundles, a nested `node_modules` or a CLI.
    fn small_packages(&mut self, node_modules: &Path) -> Result<()> {
        for i in 0..360 {
            let name = if i % 12 == 0 { format!("@scope-{}/pkg-{i:03}", i % 5) } else { format!("pkg-{i:03}") };
            let pkg = node_modules.join(&name);
            let files = self.rng.log_uniform(3, 80);
            let bundles = usize::from(i % 11 == 3) + usize::from(i % 37 == 5);
            self.package(&pkg, Shape { files, lo: 200, hi: 30_000, bundles })?;
            if i % 27 == 4 {
                // npm nests a second version when two dependents disagree on the range.
                for j in 0..1 + self.rng.below(3) {
                    let nested = pkg.join(format!("node_modules/pkg-{:03}", (i + 7 * j + 1) % 360));
                    let files = self.rng.log_uniform(3, 40);
                    self.package(&nested, Shape { files, lo: 200, hi: 20_000, bundles: 0 })?;
                }
            }
            if i % 18 == 7 {
                self.bin(node_modules, &pkg, &name)?;
            }
        }
        Ok(())
    }

    /// An executable `bin/cli.js` and its `.bin` link, relative as npm makes it.
    fn bin(&mut self, node_modules: &Path, pkg: &Path, name: &str) -> Result<()> {
        let cli = pkg.join("bin/cli.js");
        let mut text = b"#!/usr/bin/env node\n".to_vec();
        text.extend(self.rng_text(1_500, false));
        self.write(&cli, &text)?;
        fs::set_permissions(&cli, fs::Permissions::from_mode(0o755))?;
        let link_dir = node_modules.join(".bin");
        self.mkdir(&link_dir)?;
        let tool = name.rsplit('/').next().unwrap_or(name);
        let link = link_dir.join(tool);
        std::os::unix::fs::symlink(format!("../{name}/bin/cli.js"), &link)
            .with_context(|| format!("cannot link {}", link.display()))?;
        self.stats.symlinks += 1;
        Ok(())
    }

    fn package(&mut self, dir: &Path, shape: Shape) -> Result<()> {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        self.package_meta(dir, &name)?;
        let dirs: Vec<PathBuf> = (0..1 + self.rng.below(4)).map(|_| dir.join(self.rng.pick(DIRS))).collect();
        for i in 0..shape.files {
            let len = self.rng.log_uniform(shape.lo, shape.hi);
            let ext = self.rng.pick(EXTS);
            let minified = ext == "js.map" || self.rng.below(10) == 0;
            let text = self.rng_text(len, minified);
            let sub = &dirs[self.rng.below(dirs.len())];
            let word = self.rng.pick(WORDS);
            self.write(&sub.join(format!("{word}-{i}.{ext}")), &text)?;
        }
        for i in 0..shape.bundles {
            let len = self.rng.log_uniform(400_000, 3_500_000);
            let text = self.rng_text(len, true);
            self.write(&dir.join(format!("dist/bundle-{i}.min.js")), &text)?;
        }
        Ok(())
    }

    fn package_meta(&mut self, dir: &Path, name: &str) -> Result<()> {
        let json = format!(
            "{{\n  \"name\": \"{name}\",\n  \"version\": \"1.{}.0\",\n  \"main\": \"index.js\"\n}}\n",
            self.rng.below(30)
        );
        self.write(&dir.join("package.json"), json.as_bytes())?;
        self.write(&dir.join("LICENSE"), LICENSE.as_bytes())?;
        let readme_len = self.rng.log_uniform(1_000, 12_000);
        let readme = self.rng_text(readme_len, false);
        self.write(&dir.join("README.md"), &readme)?;
        let index = self.rng_text(300, false);
        self.write(&dir.join("index.js"), &index)
    }

    /// `len` bytes of code-like text. Each file gets its own identifiers, as real modules do, so
    /// files do not compress better together than real ones would.
    fn rng_text(&mut self, len: usize, minified: bool) -> Vec<u8> {
        let locals: Vec<String> = (0..24).map(|_| self.identifier(minified)).collect();
        let mut out = Vec::with_capacity(len + 32);
        let mut line = 0usize;
        while out.len() < len {
            match self.rng.below(100) {
                // Code repeats itself (call patterns, imports, boilerplate), which is most of
                // why it compresses well; copying recent spans reproduces that.
                0..REPEAT_PERCENT if out.len() > 128 => {
                    let span = 16 + self.rng.below(96);
                    let window = out.len().min(4_096);
                    let from = out.len() - window + self.rng.below(window - span);
                    out.extend_from_within(from..from + span);
                }
                0..60 => out.extend_from_slice(self.rng.pick(WORDS).as_bytes()),
                60..75 => out.extend_from_slice(locals[self.rng.below(locals.len())].as_bytes()),
                75..99 => out.extend_from_slice(self.rng.pick(PUNCT).as_bytes()),
                _ => out.extend_from_slice(format!("{}", self.rng.below(1_000)).as_bytes()),
            }
            out.push(b' ');
            line += 1;
            if !minified && line >= 6 + self.rng.below(10) {
                out.push(b'\n');
                out.extend(std::iter::repeat_n(b' ', 2 * self.rng.below(4)));
                line = 0;
            }
        }
        out.truncate(len);
        out
    }

    fn identifier(&mut self, minified: bool) -> String {
        if minified {
            return format!("{}{}", self.rng.pick(SHORT), self.rng.pick(SHORT));
        }
        let len = 4 + self.rng.below(9);
        (0..len).map(|_| char::from(b'a' + self.rng.below(26) as u8)).collect()
    }
}
