#!/usr/bin/env python3
"""Writes the committed seed corpora under fuzz/corpus/<target>/ (deterministic; rerun after
changing a protocol). Run from anywhere: python3 fuzz/seeds/make_seeds.py"""
import hashlib, io, json, os, struct, tarfile, gzip

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def varint(n):
    if n < 251:
        return bytes([n])
    if n < 1 << 16:
        return bytes([251]) + struct.pack("<H", n)
    if n < 1 << 32:
        return bytes([252]) + struct.pack("<I", n)
    return bytes([253]) + struct.pack("<Q", n)


def bstr(s):
    s = s.encode() if isinstance(s, str) else s
    return varint(len(s)) + s


def header(kind, rid, n):
    return b"BRTH" + bytes([1, kind, 0, 0]) + struct.pack("<QI", rid, n)


def frame(kind, rid, payload):
    return header(kind, rid, len(payload)) + payload


DIGEST = "sha256:" + hashlib.sha256(b"berth").hexdigest()

# frame: a handshake, requests, a cancel, an error, and a whole client conversation.
hello = frame(1, 0, varint(1) + bstr("content") + bstr("berth-cli"))
welcome = frame(2, 0, varint(1) + bstr("content") + bstr("0.1.0") + varint(4242))
health = frame(3, 1, b"\x00\x00")
info = frame(3, 2, b"\x01\x00" + bstr(DIGEST))
cancel = frame(8, 2, b"")
error = frame(7, 0, varint(3) + bstr("blob " + DIGEST[:19] + "…: not found"))
put("frame", "hello", hello)
put("frame", "welcome", welcome)
put("frame", "request", info)
put("frame", "cancel", cancel)
put("frame", "error", error)
put("frame", "conversation", hello + health + info + cancel)
put("frame", "oversized", header(3, 1, 0xFFFFFFFF))

# request_<proto>: Common(Health), Common(Metrics), then Service(k) for every variant with a
# few plausible field prefixes (a digest string, a short name, small integers).
VARIANTS = {"content": 11, "metadata": 31, "snapshot": 14, "runtime": 17, "events": 4, "launcher": 5}
for proto, n in VARIANTS.items():
    t = "request_" + proto
    put(t, "health", b"\x00\x00")
    put(t, "metrics", b"\x00\x01")
    for k in range(n):
        put(t, f"v{k:02}_empty", b"\x01" + varint(k))
        put(t, f"v{k:02}_digest", b"\x01" + varint(k) + bstr(DIGEST) + b"\x00" * 4)
        put(t, f"v{k:02}_names", b"\x01" + varint(k) + bstr("default") + bstr("busybox") + b"\x00\x01\x00\x00")

# oci: first byte picks the declared media type (see fuzz/src/lib.rs DECLARED).
cfg = {"architecture": "amd64", "os": "linux",
       "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "User": "0:0", "WorkingDir": "/"},
       "rootfs": {"type": "layers", "diff_ids": [DIGEST]},
       "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "ADD rootfs.tar /"}]}
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": DIGEST, "size": 581},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": DIGEST,
                        "size": 2152262, "annotations": {"org.opencontainers.image.title": "l"}}]}
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": DIGEST, "size": 528,
                        "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
                       {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": DIGEST, "size": 528,
                        "platform": {"architecture": "amd64", "os": "linux"}}],
         "annotations": {"org.opencontainers.image.ref.name": "latest"}}
dmanifest = dict(manifest, mediaType="application/vnd.docker.distribution.manifest.v2+json")
dmanifest["config"] = dict(manifest["config"], mediaType="application/vnd.docker.container.image.v1+json")
dmanifest["layers"] = [dict(manifest["layers"][0], mediaType="application/vnd.docker.image.rootfs.diff.tar.gzip")]
dlist = dict(index, mediaType="application/vnd.docker.distribution.manifest.list.v2+json")
schema1 = {"schemaVersion": 1, "name": "library/busybox", "tag": "latest", "fsLayers": [{"blobSum": DIGEST}]}
for i, (name, doc) in enumerate([("config", cfg), ("manifest", manifest), ("index", index),
                                 ("docker_manifest", dmanifest), ("docker_list", dlist), ("schema1", schema1)]):
    put("oci", name, bytes([i]) + json.dumps(doc, indent=1).encode())
put("oci", "platform", b"\x00linux/arm/v7")
put("oci", "gzip_magic", b"\x01\x1f\x8b\x08\x00")

# reference
for i, r in enumerate(["a" * 4090, "busybox", "docker.io/library/alpine:3.20", "localhost:5000/a/b:t",
                       "127.0.0.1:5000/x@" + DIGEST, "[::1]:5000/x:1", "user/app:1.0@" + DIGEST,
                       "index.docker.io/busybox", "ghcr.io/o/r__x-y.z:v1.2_3"]):
    put("reference", f"r{i}", r)

# filter: one filter string per line.
for i, f in enumerate(['name==docker.io/library/busybox:latest', 'labels."io.berth/gc.root"',
                       'topic~=^/images/,id!=b\nlabels.a==""', 'name~="[a-z]+\\.io"', 'labels']):
    put("filter", f"f{i}", f)


# layer_apply: first byte = compression (0 none, 1 gzip, 2 zstd) | 4 for overlay whiteouts.
def tar(entries, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for e in entries:
            kind, name = e[0], e[1]
            ti = tarfile.TarInfo(name)
            ti.mtime = 1700000000
            data = None
            if kind == "f":
                data = e[2] if len(e) > 2 else b"hello\n"
                ti.size = len(data)
                ti.mode = 0o644
            elif kind == "d":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            elif kind == "l":
                ti.type, ti.linkname = tarfile.SYMTYPE, e[2]
            elif kind == "h":
                ti.type, ti.linkname = tarfile.LNKTYPE, e[2]
            elif kind == "p":
                ti.type = tarfile.FIFOTYPE
            elif kind == "c":
                ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 1, 3
            elif kind == "x":
                data = b"x"
                ti.size, ti.pax_headers = 1, {"SCHILY.xattr.user.berth": "v"}
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    # Drop tarfile's padding to a 10 KiB record: the entries, then the two zero blocks.
    body = buf.getvalue().rstrip(b"\0")
    return body + b"\0" * (-len(body) % 512 + 1024)


rootfs = tar([("d", "bin"), ("f", "bin/busybox", b"\x7fELF" + b"\0" * 60), ("l", "bin/sh", "busybox"),
              ("h", "bin/ls", "bin/busybox"), ("d", "etc"), ("f", "etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
              ("p", "run/fifo"), ("c", "dev/null"), ("x", "etc/xattr")])
whiteouts = tar([("d", "etc"), ("f", "etc/.wh.passwd", b""), ("f", "usr/.wh..wh..opq", b""), ("f", "usr/new")])
escapes = [
    ("dotdot", tar([("f", "../sentinel")])),
    ("absolute", tar([("f", "/tmp/berth-fuzz-escape")])),
    ("symlink_file", tar([("l", "s", "../sentinel"), ("f", "s", b"owned\n")])),
    ("symlink_dir", tar([("l", "d", ".."), ("f", "d/sentinel", b"owned\n")])),
    ("symlink_root", tar([("l", "d", "/"), ("f", "d/berth-fuzz-escape")])),
    ("hardlink_out", tar([("h", "h", "../sentinel")])),
    ("hardlink_symlink", tar([("l", "s", "../sentinel"), ("h", "h", "s"), ("f", "h", b"owned\n")])),
    ("symlink_chain", tar([("l", "a", "b/../../"), ("d", "b"), ("f", "a/sentinel")])),
    ("replace_dir", tar([("d", "a"), ("f", "a/x"), ("l", "a", "../"), ("f", "a/sentinel")])),
    ("longname", tar([("f", "d/" + "n" * 200 + "/f")], tarfile.GNU_FORMAT)),
]
put("layer_apply", "rootfs", b"\x00" + rootfs)
put("layer_apply", "rootfs_gzip", b"\x01" + rootfs)
put("layer_apply", "rootfs_zstd", b"\x02" + rootfs)
put("layer_apply", "rootfs_pregzipped", b"\x00" + gzip.compress(rootfs, mtime=0))
put("layer_apply", "whiteouts_overlay", b"\x04" + rootfs[:-1024] + whiteouts)
put("layer_apply", "whiteouts_delete", b"\x00" + rootfs[:-1024] + whiteouts)
for name, t in escapes:
    put("layer_apply", name, b"\x00" + t)

# spdy: frames as Go's moby/spdystream wrote them (two SYN_STREAMs sharing one zlib context,
# data, a ping), and a few hand-made control frames.
put("spdy", "spdystream", bytes.fromhex(
    "80030001000000340000000100000000400078f9e3c6a7c26260606002a7b392a2d4c45c6851c2565c92925f5a"
    "0229978bc0b485818501000000ffff800300010100001c0000000300000000000062606060c450cb9a5a54945f"
    "04000000ffff000000010000000568656c6c6f800300060000000400000005"))
put("spdy", "control", bytes.fromhex("8003000600000004000000018003000300000008000000050000000580030009"
                                      "00000008000000000000100080030007000000080000000900000000"))
put("spdy", "settings", bytes.fromhex("800300040000000c00000001010000070001000000000001000000036869"))

# websocket: masked client frames: a binary stdin message [0, "hi"], a ping, a resize on
# channel 4, v5's close of stdin [255, 0], and a close frame.
def ws_frame(opcode, payload, mask=b"\x01\x02\x03\x04"):
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    else:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


put("websocket", "session", ws_frame(2, b"\x00hi") + ws_frame(9, b"p") +
    ws_frame(2, b'\x04{"Width":80,"Height":24}') + ws_frame(2, b"\xff\x00") + ws_frame(8, b"\x03\xe8"))
put("websocket", "fragmented", bytes([0x02, 0x83]) + b"\x01\x02\x03\x04" + bytes([1 ^ 1, 2 ^ 2, 3 ^ 3]) +
    bytes([0x80, 0x82]) + b"\x00\x00\x00\x00" + b"ab")
