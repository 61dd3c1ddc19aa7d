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
