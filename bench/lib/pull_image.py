#!/usr/bin/env python3
"""The image of bench/pull.sh: generate it once (cached), push it to a registry, wait for one.

  pull_image.py build CACHE_DIR SIZE_MB LAYERS BUSYBOX_TAR   prints the image directory
  pull_image.py push IMAGE_DIR HOST:PORT NAME TAG             uploads blobs, then the manifest
  pull_image.py ping HOST:PORT SECONDS                        waits until GET /v2/ answers 200
  pull_image.py meta IMAGE_DIR KEY                            prints one value of meta.json

The image: busybox's layer (so a container can check the content) and LAYERS data layers of
SIZE_MB MiB in all (uncompressed). Each data layer holds a few large "binary" files (mostly
random bytes with runs of text, like executables and libraries) and many small text files
(words drawn from a vocabulary, like sources and docs), so gzip does real work on part of
the data and none on the rest, as with real images. Layers are gzipped at level 6; the config
carries rootfs.diff_ids (sha256 of the uncompressed tars); the manifest is Docker schema 2.
Random data comes from a seeded generator: a rebuilt cache holds the same image.

The image directory is CACHE_DIR/pull-<key>, where key covers the generator version, the
size, the layer count and busybox's layer: a repeated run reuses it.
"""

import gzip
import hashlib
import io
import json
import os
import random
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request

GENERATOR_VERSION = "1"
MIB = 1 << 20
MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MTIME = 1700000000


class HashingWriter:
    """A write-only file that hashes and counts what goes through it."""

    def __init__(self, inner):
        self.inner = inner
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, b):
        self.sha.update(b)
        self.size += len(b)
        if self.inner is not None:
            self.inner.write(b)
        return len(b)

    def flush(self):
        if self.inner is not None:
            self.inner.flush()


def text_pool(rng, size):
    """Text made of words from a fixed vocabulary, in lines of varying length."""
    letters = "abcdefghijklmnopqrstuvwxyz_"
    vocab = ["".join(rng.choices(letters, k=rng.randint(2, 10))) for _ in range(3000)]
    vocab += ["{", "}", "(", ")", ";", "=", "->", "return", "if", "for", "0", "1", "self"]
    out, n = [], 0
    while n < size:
        line = " ".join(rng.choices(vocab, k=rng.randint(3, 14))) + "\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()


def add_file(tar, path, data):
    info = tarfile.TarInfo(path)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = MTIME
    tar.addfile(info, io.BytesIO(data))


def add_dir(tar, path):
    info = tarfile.TarInfo(path)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = MTIME
    tar.addfile(info)


def data_layer(rng, pool, index, size):
    """Yields (path, bytes | None for a directory) for one data layer of about `size` bytes."""
    top = f"bench/l{index}"
    yield "bench", None
    yield top, None
    yield f"{top}/bin", None
    yield f"{top}/src", None
    binary = size * 45 // 100
    n = 0
    i = 0
    while n < binary:
        # Mostly random bytes with text runs in between (strings, symbol tables).
        want = min(rng.randint(2 * MIB, 8 * MIB), binary - n)
        parts, got = [], 0
        while got < want:
            r = min(rng.randint(32 << 10, 256 << 10), want - got)
            parts.append(rng.randbytes(r))
            got += r
            if got < want:
                t = min(rng.randint(4 << 10, 64 << 10), want - got)
                off = rng.randrange(0, len(pool) - t)
                parts.append(pool[off : off + t])
                got += t
        yield f"{top}/bin/blob{i}", b"".join(parts)
        n += want
        i += 1
    i = 0
    while n < size:
        t = min(rng.randint(512, 32 << 10), size - n)
        off = rng.randrange(0, len(pool) - t)
        if i % 200 == 0:
            yield f"{top}/src/d{i // 200}", None
        yield f"{top}/src/d{i // 200}/f{i}.txt", pool[off : off + t]
        n += t
        i += 1


def write_layer(entries, dest):
    """Writes a gzipped tar of `entries` to dest; returns (diff_id, digest, size, files)."""
    with open(dest, "wb") as f:
        compressed = HashingWriter(f)
        with gzip.GzipFile(fileobj=compressed, mode="wb", compresslevel=6, mtime=0) as gz:
            raw = HashingWriter(gz)
            files = 0
            with tarfile.open(fileobj=raw, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for path, data in entries:
                    if data is None:
                        add_dir(tar, path)
                    else:
                        add_file(tar, path, data)
                        files += 1
        f.flush()
        os.fsync(f.fileno())
    return "sha256:" + raw.sha.hexdigest(), "sha256:" + compressed.sha.hexdigest(), compressed.size, raw.size, files


def busybox_layer(archive):
    with tarfile.open(archive) as t:
        manifest = json.load(t.extractfile("manifest.json"))
        return t.extractfile(manifest[0]["Layers"][0]).read()


def build(cache, size_mb, layers, busybox_tar):
    base = busybox_layer(busybox_tar)
    key = hashlib.sha256(
        f"{GENERATOR_VERSION}/{size_mb}/{layers}/".encode() + hashlib.sha256(base).digest()
    ).hexdigest()[:16]
    out = os.path.join(cache, f"pull-v{GENERATOR_VERSION}-{size_mb}m-{layers}l-{key}")
    if os.path.exists(os.path.join(out, "meta.json")):
        return out
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "blobs"))
    t0 = time.monotonic()
    rng = random.Random(f"arca-bench-pull/{size_mb}/{layers}")
    pool = text_pool(rng, 8 * MIB)

    descs, diff_ids, history = [], [], []
    total_raw = total_gz = total_files = 0

    def finish(entries, comment):
        nonlocal total_raw, total_gz, total_files
        dest = os.path.join(tmp, "layer.tmp")
        diff_id, digest, gz_size, raw_size, files = write_layer(entries, dest)
        os.rename(dest, os.path.join(tmp, "blobs", digest.split(":")[1]))
        descs.append({"mediaType": LAYER_TYPE, "size": gz_size, "digest": digest})
        diff_ids.append(diff_id)
        history.append({"created": "2023-11-14T22:13:20Z", "created_by": comment})
        total_raw += raw_size
        total_gz += gz_size
        total_files += files
        print(f"pull_image: layer {len(descs)}: {raw_size / MIB:.1f} MiB, "
              f"gzip {gz_size / MIB:.1f} MiB, {files} files", file=sys.stderr)

    # busybox's layer first, gzipped as it is (its diff_id is unchanged).
    dest = os.path.join(tmp, "layer.tmp")
    with open(dest, "wb") as f:
        compressed = HashingWriter(f)
        with gzip.GzipFile(fileobj=compressed, mode="wb", compresslevel=6, mtime=0) as gz:
            gz.write(base)
    digest = "sha256:" + compressed.sha.hexdigest()
    os.rename(dest, os.path.join(tmp, "blobs", digest.split(":")[1]))
    descs.append({"mediaType": LAYER_TYPE, "size": compressed.size, "digest": digest})
    diff_ids.append("sha256:" + hashlib.sha256(base).hexdigest())
    history.append({"created": "2023-11-14T22:13:20Z", "created_by": "busybox"})
    total_raw += len(base)
    total_gz += compressed.size

    per_layer = size_mb * MIB // layers
    check = None
    for i in range(layers):
        entries = data_layer(rng, pool, i, per_layer)
        if i == layers - 1:
            # Remember one file of the last layer for the content check after a pull.
            def remembering(gen):
                nonlocal check
                for path, data in gen:
                    if check is None and data is not None:
                        check = {"path": "/" + path, "sha256": hashlib.sha256(data).hexdigest()}
                    yield path, data
            entries = remembering(entries)
        finish(entries, f"data layer {i}")

    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    config_digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    with open(os.path.join(tmp, "blobs", config_digest.split(":")[1]), "wb") as f:
        f.write(config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "size": len(config_bytes), "digest": config_digest},
        "layers": descs,
    }
    with open(os.path.join(tmp, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    meta = {
        "compressed_bytes": total_gz,
        "uncompressed_bytes": total_raw,
        "layers": len(descs),
        "files": total_files,
        "check_path": check["path"],
        "check_sha256": check["sha256"],
        "config_digest": config_digest,
    }
    with open(os.path.join(tmp, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
    print(f"pull_image: generated {total_raw / MIB:.0f} MiB ({total_gz / MIB:.0f} MiB gzipped) "
          f"in {time.monotonic() - t0:.1f}s into {out}", file=sys.stderr)
    return out


def request(method, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=120) as r:
        r.read()
        return r.status, r.headers


def push(image_dir, host, name, tag):
    base = f"http://{host}"
    with open(os.path.join(image_dir, "manifest.json"), "rb") as f:
        manifest_bytes = f.read()
    manifest = json.loads(manifest_bytes)
    for desc in [manifest["config"]] + manifest["layers"]:
        digest = desc["digest"]
        path = os.path.join(image_dir, "blobs", digest.split(":")[1])
        status, headers = request("POST", f"{base}/v2/{name}/blobs/uploads/", b"")
        if status != 202:
            raise SystemExit(f"start upload of {digest}: HTTP {status}")
        location = urllib.parse.urljoin(base + "/", headers["Location"])
        sep = "&" if "?" in location else "?"
        size = os.path.getsize(path)
        with open(path, "rb") as body:
            status, _ = request("PUT", f"{location}{sep}digest={urllib.parse.quote(digest)}", body,
                                {"Content-Type": "application/octet-stream",
                                 "Content-Length": str(size)})
        if status != 201:
            raise SystemExit(f"upload of {digest}: HTTP {status}")
    status, _ = request("PUT", f"{base}/v2/{name}/manifests/{tag}", manifest_bytes,
                        {"Content-Type": MANIFEST_TYPE})
    if status != 201:
        raise SystemExit(f"put manifest: HTTP {status}")


def ping(host, seconds):
    deadline = time.monotonic() + seconds
    while True:
        try:
            if request("GET", f"http://{host}/v2/")[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"registry at {host} did not answer within {seconds}s")
        time.sleep(0.05)


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    try:
        if cmd == "build" and len(argv) == 6:
            print(build(argv[2], int(argv[3]), int(argv[4]), argv[5]))
        elif cmd == "push" and len(argv) == 6:
            push(argv[2], argv[3], argv[4], argv[5])
        elif cmd == "ping" and len(argv) == 4:
            ping(argv[2], float(argv[3]))
        elif cmd == "meta" and len(argv) == 4:
            with open(os.path.join(argv[2], "meta.json")) as f:
                print(json.load(f)[argv[3]])
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except urllib.error.HTTPError as e:
        print(f"pull_image: {e.method if hasattr(e, 'method') else ''} {e.url}: HTTP {e.code}: "
              f"{e.read()[:500]!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
