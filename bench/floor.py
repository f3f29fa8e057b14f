"""Physical floors for an export: creating the exported tree cannot be beaten by a solver
that must write it. Two are measured, in a fresh directory each:

  create   the same directories, files (contents and modes) and symlinks made by a C loop
           (compiled with gcc at bench time) from a pack read into memory beforehand: the
           cost of the creations themselves, no reading, no interpreter
  cp -a    `cp -a` of the exported tree (a copy: reads, creates, keeps metadata)
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

_C = r"""
/* mktree PACK DEST: read PACK into memory, then create its entries under DEST (timed) and
   print the seconds the creations took. PACK: records "D mode path\n",
   "L target\0path\n", "F mode size path\n" followed by size bytes of contents. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what, const char *path) { perror(path); fprintf(stderr, "%s\n", what); exit(1); }

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: mktree PACK DEST\n"); return 2; }
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) die("open pack", argv[1]);
    struct stat st;
    fstat(fd, &st);
    char *buf = malloc(st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, st.st_size - got);
        if (r <= 0) die("read pack", argv[1]);
        got += r;
    }
    close(fd);
    buf[got] = 0;
    for (size_t i = 0; i < got; i += 4096) ((volatile char *)buf)[i];  /* faulted in */
    if (chdir(argv[2])) die("chdir", argv[2]);
    umask(0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char *p = buf, *end = buf + got;
    while (p < end) {
        char kind = *p;
        char *nl;
        if (kind == 'D') {
            unsigned mode; int n;
            sscanf(p + 2, "%o %n", &mode, &n);
            char *path = p + 2 + n;
            nl = strchr(path, '\n'); *nl = 0;
            if (mkdir(path, mode)) die("mkdir", path);
            p = nl + 1;
        } else if (kind == 'L') {
            char *target = p + 2;
            char *path = target + strlen(target) + 1;
            nl = strchr(path, '\n'); *nl = 0;
            if (symlink(target, path)) die("symlink", path);
            p = nl + 1;
        } else if (kind == 'F') {
            unsigned mode; unsigned long size; int n;
            sscanf(p + 2, "%o %lu %n", &mode, &size, &n);
            char *path = p + 2 + n;
            nl = strchr(path, '\n'); *nl = 0;
            int f = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
            if (f < 0) die("create", path);
            char *data = nl + 1;
            unsigned long off = 0;
            while (off < size) {
                ssize_t w = write(f, data + off, size - off);
                if (w <= 0) die("write", path);
                off += w;
            }
            close(f);
            p = data + size;
        } else {
            fprintf(stderr, "bad pack record at %ld\n", (long)(p - buf));
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%.6f\n", (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}
"""


def compile_mktree(where: Path) -> Path:
    """Build the C creation loop into `where` (gcc -O2)."""
    src, exe = where / "mktree.c", where / "mktree"
    src.write_text(_C)
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(src)], check=True)
    return exe


def pack(tree: Path, out: Path) -> int:
    """Write the pack of `tree` (for mktree) to `out`; the number of entries."""
    n = 0
    with open(out, "wb") as f:
        stack = [""]
        while stack:
            rel = stack.pop()
            with os.scandir(tree / rel if rel else tree) as it:
                entries = sorted(it, key=lambda e: e.name)
            for e in entries:
                path = f"{rel}/{e.name}" if rel else e.name
                st = e.stat(follow_symlinks=False)
                mode = stat.S_IMODE(st.st_mode)
                n += 1
                if stat.S_ISDIR(st.st_mode):
                    f.write(f"D {mode:o} {path}\n".encode())
                    stack.append(path)
                elif stat.S_ISLNK(st.st_mode):
                    f.write(b"L " + os.readlink(e.path).encode() + b"\0" + path.encode() + b"\n")
                else:
                    data = Path(e.path).read_bytes()
                    f.write(f"F {mode:o} {len(data)} {path}\n".encode())
                    f.write(data)
    return n


def create(mktree: Path, pack_file: Path, dest: Path) -> float:
    """Seconds the C loop takes to create the packed tree in `dest` (a new directory)."""
    dest.mkdir()
    p = subprocess.run([str(mktree), str(pack_file), str(dest)], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"mktree failed: {p.stderr.strip()}")
    return float(p.stdout)


def cp_a(tree: Path, dest: Path) -> float:
    """Wall seconds of `cp -a tree dest`."""
    t0 = time.perf_counter()
    subprocess.run(["cp", "-a", str(tree), str(dest)], check=True)
    return time.perf_counter() - t0
