use super::*;

fn read_back(paths: &LogPaths) -> Vec<u8> {
    let mut out = Vec::new();
    for f in paths.existing() {
        for line in std::fs::read(f).expect("read").split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            out.extend(parse(line).expect("a record").bytes());
        }
    }
    out
}

#[test]
fn records_are_lossless() {
    let mut out = Vec::new();
    encode(&mut out, OutputStream::Stderr, 5, b"one\n\ntwo");
    let text = String::from_utf8(out.clone()).expect("utf8");
    assert_eq!(
        text,
        "1970-01-01T00:00:00.000000005Z stderr F one\n1970-01-01T00:00:00.000000005Z stderr F \n\
         1970-01-01T00:00:00.000000005Z stderr P two\n"
    );
    let back: Vec<u8> = out
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .flat_map(|l| parse(l).expect("record").bytes())
        .collect();
    assert_eq!(back, b"one\n\ntwo");
}

#[test]
fn rotation_caps_the_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = LogPaths::new(dir.path(), None);
    let mut w = LogWriter::open(paths.clone(), 4096, 3).expect("open");
    let chunk = vec![b'y'; 100];
    let mut written = Vec::new();
    for i in 0..1000u64 {
        let mut data = chunk.clone();
        data.push(b'\n');
        w.write(OutputStream::Stdout, i, &data).expect("write");
        written.extend(data);
    }
    let files = paths.existing();
    assert_eq!(files.len(), 3, "{files:?}");
    for f in &files {
        let len = std::fs::metadata(f).expect("stat").len();
        assert!(len <= 4096, "{} is {len} bytes", f.display());
    }
    // What is kept is the newest output, whole records.
    let kept = read_back(&paths);
    assert!(kept.len() > 4096 && written.ends_with(&kept), "{} bytes kept", kept.len());
}

#[test]
fn a_callers_path_is_never_rotated_and_a_reopen_starts_a_new_file_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pods/web/0.log");
    let paths = LogPaths::at(&path);
    assert!(!paths.rotates());
    let mut follower = crate::logread::Follower::new(paths.clone());
    // The cap is berth's own files' only.
    let mut w = LogWriter::open(paths.clone(), 4096, 1).expect("open");
    let line = [vec![b'x'; 99], vec![b'\n']].concat();
    for i in 0..100 {
        w.write(OutputStream::Stdout, i, &line).expect("write");
    }
    w.write(OutputStream::Stderr, 100, b"abc").expect("write");
    assert_eq!(std::fs::metadata(&path).expect("stat").len(), 100 * (31 + 7 + 2 + 100) + 31 + 7 + 2 + 4);
    assert_eq!(paths.existing(), std::slice::from_ref(&path));
    let mut seen: Vec<u8> = follower.read().iter().flat_map(Record::bytes).collect();
    // Renamed away by its owner, then reopened: the old file keeps what was written.
    let renamed = dir.path().join("pods/web/0.log.20240101-000000");
    std::fs::rename(&path, &renamed).expect("rename");
    w.write(OutputStream::Stdout, 101, b"still old\n").expect("write");
    w.reopen().expect("reopen");
    w.write(OutputStream::Stdout, 102, b"new\n").expect("write");
    let old = std::fs::read_to_string(&renamed).expect("renamed");
    assert!(old.ends_with(" stderr P abc\n1970-01-01T00:00:00.000000101Z stdout F still old\n"), "{old}");
    let new = std::fs::read_to_string(&path).expect("new");
    assert_eq!(new, "1970-01-01T00:00:00.000000102Z stdout F new\n");
    // A reader of the old file finishes it, then goes on with the new one: nothing twice.
    loop {
        let records = follower.read();
        if records.is_empty() {
            break;
        }
        seen.extend(records.iter().flat_map(Record::bytes));
    }
    let want = [line.repeat(100), b"abcstill old\nnew\n".to_vec()].concat();
    assert_eq!(String::from_utf8_lossy(&seen), String::from_utf8_lossy(&want));
    // The dirs of a caller's path are 0755 (less the umask), its file 0640 at most.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&path) & !0o640, 0, "file mode {:o}", mode(&path));
    assert_eq!(mode(dir.path().join("pods").as_path()) & !0o755, 0);
}
