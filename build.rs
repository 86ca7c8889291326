//! Embeds the git revision the program is built from (`T2S_REVISION`: the commit, with `-dirty`
//! when tracked files differ from it, or `unknown` outside a checkout), for `t2s --version` and
//! the `command.txt` of every run folder, wherever the program later runs.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok().filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let revision = match git(&["rev-parse", "HEAD"]) {
        Some(rev) => match git(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(changes) if !changes.is_empty() => format!("{rev}-dirty"),
            _ => rev,
        },
        None => "unknown".into(),
    };
    println!("cargo:rustc-env=T2S_REVISION={revision}");
    // Again after a commit, a checkout or a staged change, and after an edit of the sources
    // (which changes the dirty flag; the program is rebuilt then anyway).
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        for f in ["HEAD", "index", "refs"] {
            println!("cargo:rerun-if-changed={dir}/{f}");
        }
    }
    for d in ["src", "crates", "configs", "Cargo.toml", "build.rs"] {
        println!("cargo:rerun-if-changed={d}");
    }
}
