#!/usr/bin/python3
"""Screenshots of the workbench for the docs: runs `mppdl gui ARGS` on a private Xvfb display and
saves the screen as PNG once the window has settled.

    /usr/bin/python3 docs/screenshot.py OUT.png [--size 1400x900] [--wait 4] -- gui PROJECT --run 1

Xvfb writes its framebuffer as an XWD file (-fbdir); this reads it with numpy and writes the PNG
with OpenCV (Debian's python3-numpy and python3-opencv; no ImageMagick needed).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_xwd(path):
    """An XWD screen dump (32 bits a pixel, as Xvfb writes at depth 24) as a BGR array."""
    with open(path, "rb") as f:
        data = f.read()
    header = np.frombuffer(data[:100], dtype=">u4")
    header_size, width, height = int(header[0]), int(header[4]), int(header[5])
    byte_order, bits_per_pixel, bytes_per_line, ncolors = int(header[7]), int(header[11]), int(header[12]), int(header[19])
    if bits_per_pixel != 32:
        raise SystemExit("%s: %d bits a pixel; expected 32" % (path, bits_per_pixel))
    start = header_size + 12 * ncolors
    rows = np.frombuffer(data[start:start + bytes_per_line * height], dtype=np.uint8).reshape(height, bytes_per_line)
    pixels = rows[:, :width * 4].reshape(height, width, 4)
    if byte_order == 1:  # MSB first: XRGB
        pixels = pixels[:, :, ::-1]
    return np.ascontiguousarray(pixels[:, :, :3])  # LSB first: B, G, R, X


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out")
    p.add_argument("--size", default="1400x900")
    p.add_argument("--wait", type=float, default=4.0, help="seconds to let the window settle")
    p.add_argument("--display", default=":97")
    p.add_argument("--mppdl", default=os.environ.get("MPPDL", os.path.join(REPO_ROOT, "build", "app", "mppdl")))
    argv = sys.argv[1:]
    if "--" not in argv:
        p.error("give mppdl's arguments after --")
    split = argv.index("--")
    a = p.parse_args(argv[:split])
    args = argv[split + 1:]
    with tempfile.TemporaryDirectory() as fbdir:
        xvfb = subprocess.Popen(["Xvfb", a.display, "-screen", "0", a.size + "x24", "-fbdir", fbdir, "-nolisten", "tcp"],
                                stderr=subprocess.DEVNULL)
        try:
            time.sleep(1.0)
            env = dict(os.environ, DISPLAY=a.display, QT_QPA_PLATFORM="xcb")
            gui = subprocess.Popen([a.mppdl, *args], env=env)
            try:
                time.sleep(a.wait)
                if gui.poll() is not None:
                    raise SystemExit("mppdl exited with %d before the screenshot" % gui.returncode)
                image = read_xwd(os.path.join(fbdir, "Xvfb_screen0"))
            finally:
                gui.terminate()
                gui.wait()
        finally:
            xvfb.terminate()
            xvfb.wait()
    if not cv2.imwrite(a.out, image):
        raise SystemExit("cannot write " + a.out)
    print("%s: %dx%d" % (a.out, image.shape[1], image.shape[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
