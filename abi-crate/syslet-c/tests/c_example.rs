//! The C side, checked on the host: `include/threadlet.h` compiles
//! warning-free against the installed uapi headers, its constants are the
//! crate's, and `examples/threadlet_example.c` links against
//! `libsyslet_c.a` and runs (on a kernel without threadlets it checks the
//! error paths only; in the guest it runs all of it).
//!
//! Needs a C compiler (`$CC`, default `cc`) and the patched kernel's
//! installed headers (`make headers`): `$SYSLET_HEADERS`, else
//! `<target dir>/../headers/include` (the `make test` layout, where the
//! target dir is `$BUILD/cargo`), else `build/headers/include` of the
//! workspace.  Without either the tests say why and pass.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/<profile>/deps`, where this test and the static library are.
fn deps_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent().expect("deps dir").to_path_buf()
}

/// The newest `libsyslet_c-*.a` cargo built for this test run.
fn static_lib() -> PathBuf {
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for e in std::fs::read_dir(deps_dir())
        .expect("read deps dir")
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("libsyslet_c-") && name.ends_with(".a") {
            let t = e.metadata().and_then(|m| m.modified()).ok();
            if let Some(t) = t {
                if best.as_ref().map_or(true, |(b, _)| t > *b) {
                    best = Some((t, e.path()));
                }
            }
        }
    }
    best.expect("cargo builds libsyslet_c-*.a next to the tests")
        .1
}

fn headers_dir() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(h) = std::env::var_os("SYSLET_HEADERS") {
        candidates.push(PathBuf::from(h));
    }
    // deps -> <profile> -> <target dir>
    if let Some(target) = deps_dir().parent().and_then(Path::parent) {
        candidates.push(target.join("../headers/include"));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../build/headers/include"));
    candidates
        .into_iter()
        .find(|d| d.join("linux/syslet.h").is_file())
}

fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".to_owned())
}

/// Compile `src` with the header and link it with the library; `None`
/// (after a note) when there is no compiler or no installed headers.
fn build(src: &Path, out_name: &str) -> Option<PathBuf> {
    let Some(headers) = headers_dir() else {
        eprintln!("note: skipped, no installed uapi headers (make headers, or set SYSLET_HEADERS)");
        return None;
    };
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(out_name);
    let mut cmd = Command::new(cc());
    cmd.args(["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(&include)
        .arg("-I")
        .arg(&headers)
        .arg("-o")
        .arg(&out)
        .arg(src)
        .arg(static_lib())
        .args(["-lpthread", "-ldl", "-lm"]);
    let res = match cmd.output() {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("note: skipped, no C compiler {:?}", cc());
            return None;
        }
        Err(e) => panic!("{cmd:?}: {e}"),
    };
    assert!(
        res.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
    Some(out)
}

#[test]
fn header_constants_are_the_crates() {
    let src = Path::new(env!("CARGO_TARGET_TMPDIR")).join("threadlet_constants.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\n#include <threadlet.h>\n\
         int main(void) {\n\
         \tprintf(\"%d %d %d %zu %zu\\n\", THREADLET_DONE, THREADLET_ASYNC,\n\
         \t       THREADLET_STACK_WORD_OFFSET, sizeof(struct syslet_uatom),\n\
         \t       sizeof(struct async_head_user));\n\
         \treturn 0;\n}\n",
    )
    .expect("write the source");
    let Some(exe) = build(&src, "threadlet_constants") else {
        return;
    };
    let out = Command::new(&exe).output().expect("run");
    assert!(out.status.success());
    let want = format!(
        "{} {} {} 88 64\n",
        syslet::THREADLET_DONE,
        syslet::THREADLET_ASYNC,
        syslet::STACK_WORD_OFFSET
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
}

#[test]
fn c_example_builds_and_runs() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/threadlet_example.c");
    let Some(exe) = build(&src, "threadlet_example") else {
        return;
    };
    let out = Command::new(&exe).output().expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ok threadlet_example"),
        "threadlet_example: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    eprint!("{stdout}");
}
