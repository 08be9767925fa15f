"""Inputs whose headers declare more than their bytes hold: WAV files at crafted sample rates
(0 Hz, 7 Hz, 1e9 Hz, 384 kHz) through an exported speech SavedModel and through the predictor,
with the peak memory of a fresh process measured; images whose headers declare 100000x100000
pixels through the predictor's reader and the image-folder loader."""

import io
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from zoo import predict
from zoo.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, load_waveform, serving_endpoints, serving_metadata
from zoo.cli import run as run_cli
from zoo.data.images import load_cifar10
from zoo.errors import DataError
from zoo.export import export_saved_model
from zoo.images import MAX_IMAGE_PIXELS, check_image_header, decode_image, image_header_size
from zoo.pretrained import load, read_image
from zoo.registry import build_model
from zoo.safety import write_manifest

REPO = Path(__file__).resolve().parents[1]
RATE, SAMPLES = 8000, 2000  # the toy model's
LABELS = ["low", "mid", "high"]
REFUSED = {0: "0", 7: "7", 10**9: "1000000000"}


def crafted_wav(rate, samples):
    """16-bit mono PCM WAV bytes whose header declares `rate` (the byte rate to match, as
    `tf.audio.decode_wav` checks), holding `samples` (int16 [n])."""
    data = np.asarray(samples, "<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", len(data)) + data)


def tone(freq, rate, seconds, amp=0.5):
    t = np.arange(int(round(rate * seconds))) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def pcm(x):
    return np.round(np.asarray(x) * 32767).astype("<i2")


@pytest.fixture(scope="module")
def entry(tmp_path_factory):
    """A toy speech SavedModel exported by the task's code, with its manifest (a loadable entry)."""
    model = build_model("ds_cnn", num_classes=len(LABELS), sample_rate=RATE, num_samples=SAMPLES, filters=8, blocks=1)
    path = tmp_path_factory.mktemp("speech") / "toy_speech"
    export_saved_model(model, path, **serving_endpoints(model, sample_rate=RATE, num_samples=SAMPLES),
                       metadata={"name": "toy_speech", "labels": LABELS,
                                 **serving_metadata(sample_rate=RATE, num_samples=SAMPLES, num_classes=len(LABELS))})
    write_manifest(path)
    return path


@pytest.fixture(scope="module")
def saved_model(entry):
    return tf.saved_model.load(str(entry))


# --- WAV sample rates ----------------------------------------------------------------------------


@pytest.mark.parametrize("rate", sorted(REFUSED))
def test_serve_wav_refuses_a_rate_outside_the_range_with_a_clear_error(saved_model, rate):
    wav = crafted_wav(rate, pcm(tone(440, 16000, 0.1)))
    with pytest.raises(tf.errors.InvalidArgumentError) as e:
        saved_model.serve_wav(tf.constant([wav]))
    assert (f"the WAV file declares a sample rate of] [{REFUSED[rate]}] "
            f"[Hz; accepted: {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz]") in e.value.message


@pytest.mark.parametrize("rate", [MIN_SAMPLE_RATE, 16000, 44100, MAX_SAMPLE_RATE])
def test_serve_wav_resamples_any_rate_in_the_range(saved_model, rate):
    freq = 300  # below the Nyquist frequency of every rate here
    wav = crafted_wav(rate, pcm(tone(freq, rate, 0.5)))
    waveform = load_waveform(wav, sample_rate=RATE, num_samples=SAMPLES).numpy()
    # The same tone at the model's rate, away from the clip's edges (which the filter sees as silence).
    np.testing.assert_allclose(waveform[200:-200], tone(freq, RATE, 0.5)[1000:3000][200:-200], atol=3e-3)
    probs = saved_model.serve_wav(tf.constant([wav])).numpy()
    np.testing.assert_allclose(probs, saved_model.serve(tf.constant(waveform[None])).numpy(), atol=1e-5)


@pytest.mark.parametrize("rate", sorted(REFUSED))
def test_the_predictor_refuses_a_rate_outside_the_range_naming_the_file(entry, tmp_path, rate):
    path = tmp_path / "crafted.wav"
    path.write_bytes(crafted_wav(rate, pcm(tone(440, 16000, 0.1))))
    message = (f"crafted.wav: the WAV file declares a sample rate of {REFUSED[rate]} Hz; "
               f"accepted: {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz.")
    with pytest.raises(DataError, match=message):
        load(entry).predict([path])
    with pytest.raises(DataError, match="input 2: " + message.split(": ", 1)[1]):
        load(entry).predict([crafted_wav(16000, pcm(tone(440, 16000, 0.1))), path.read_bytes()])


@pytest.mark.parametrize("name", ["speech_commands", "spoken_digits"])
def test_the_predictor_protects_the_shipped_entries_whose_graphs_do_not_check(name, tmp_path):
    # Their serve_wav was exported before it checked the rate: the predictor must refuse first.
    path = tmp_path / "crafted.wav"
    path.write_bytes(crafted_wav(10**9, np.zeros(1000, "<i2")))
    with pytest.raises(DataError, match=r"crafted\.wav: the WAV file declares a sample rate of 1000000000 Hz"):
        load(name).predict([path])
    (result,) = load(name).predict([crafted_wav(MAX_SAMPLE_RATE, pcm(tone(440, MAX_SAMPLE_RATE, 0.2)))])
    assert 0 < result["probability"] <= 1


def test_predict_command_line_gives_one_error_line(tmp_path, capsys, monkeypatch):
    path = tmp_path / "zero.wav"
    path.write_bytes(crafted_wav(0, np.zeros(1000, "<i2")))
    monkeypatch.delenv("ZOO_DEBUG", raising=False)
    with pytest.raises(SystemExit) as e:
        run_cli(predict.main, ["spoken_digits", str(path)])
    out, err = capsys.readouterr()
    assert e.value.code == 2 and out == ""
    assert err.strip() == (f"error: {path}: the WAV file declares a sample rate of 0 Hz; "
                           f"accepted: {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz.")


PEAK_SCRIPT = r"""
import sys
import tensorflow as tf

model = tf.saved_model.load(sys.argv[1])
try:
    model.serve_wav(tf.constant([open(sys.argv[2], "rb").read()]))
    print("served")
except tf.errors.InvalidArgumentError as e:
    print("refused:", " ".join(e.message.split()))
status = open("/proc/self/status").read()
print("peak_kib", next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")))
"""
# A fresh process that imports TensorFlow and loads the toy model peaks near 0.7 GB. Before
# serve_wav checked the rate, the 4 MB file below (2M samples declared at 1e9 Hz) took 2.8 GB:
# resampling it to 8 kHz took 2e6 taps for each of its 16 output samples, in one tensor.
PEAK_LIMIT_KIB = 1_500_000


@pytest.mark.slow
def test_a_crafted_rate_is_refused_in_bounded_memory(entry, tmp_path):
    path = tmp_path / "crafted.wav"
    path.write_bytes(crafted_wav(10**9, np.zeros(2_000_000, "<i2")))
    env = {k: v for k, v in os.environ.items() if k != "ZOO_DEBUG"}
    result = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(entry), str(path)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("refused:") and "sample rate of] [1000000000]" in lines[0], lines
    peak = int(lines[-1].split()[1])
    assert peak < PEAK_LIMIT_KIB, f"peak RSS {peak / 1e6:.2f} GB"


# --- image sizes ---------------------------------------------------------------------------------


def png_declaring(width, height):
    """A PNG file of a few bytes whose header (IHDR, with a valid CRC) declares `width`x`height`
    RGB pixels and whose image data never follows."""
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))


def with_jpeg_size(jpeg, width, height):
    sof = jpeg.index(b"\xff\xc0")  # baseline start of frame: length, precision, height, width
    return jpeg[:sof + 5] + struct.pack(">HH", height, width) + jpeg[sof + 9:]


def real_images(image):
    """`image` (uint8 [h, w, 3]) as the bytes of a PNG, JPEG, GIF and BMP file."""
    from PIL import Image

    out = {}
    for fmt in ("PNG", "JPEG", "GIF", "BMP"):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format=fmt)
        out[fmt] = buffer.getvalue()
    return out


def test_image_headers_give_the_size_without_decoding():
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    for fmt, contents in real_images(image).items():
        assert image_header_size(contents).numpy().tolist() == [40, 56], fmt
        assert check_image_header(contents, fmt) == (40, 56)
        assert decode_image(contents).shape == (40, 56, 3)
    bmp = real_images(image)["BMP"]
    top_down = bmp[:22] + struct.pack("<i", -40) + bmp[26:]  # negative height: rows stored top-down
    assert image_header_size(top_down).numpy().tolist() == [40, 56]
    for contents in (b"", b"GIF", b"not an image", b"RIFF\0\0\0\0WEBPVP8 "):
        assert image_header_size(contents).numpy().tolist() == [-1, -1]


def crafted_images():
    images = real_images(np.zeros((8, 8, 3), np.uint8))
    gif, bmp = images["GIF"], images["BMP"]
    return {"huge.png": (png_declaring(100_000, 100_000), "100000x100000 pixels (10,000,000,000)"),
            "huge.jpg": (with_jpeg_size(images["JPEG"], 65_000, 60_000), "65000x60000 pixels (3,900,000,000)"),
            "huge.gif": (gif[:6] + struct.pack("<HH", 65_535, 65_535) + gif[10:], "65535x65535 pixels"),
            "huge.bmp": (bmp[:18] + struct.pack("<ii", 50_000, -50_000) + bmp[26:], "50000x50000 pixels"),
            "just_over.png": (png_declaring(8001, 5000), "8001x5000 pixels (40,005,000)")}


@pytest.mark.parametrize("name", sorted(crafted_images()))
def test_the_predictor_refuses_an_image_declaring_too_many_pixels(tmp_path, name):
    contents, size = crafted_images()[name]
    (tmp_path / name).write_bytes(contents)
    message = re.escape(f"{name}: the image declares {size}") + r".*; the limit is 40,000,000 \(zoo\.images"
    with pytest.raises(DataError, match=message):
        read_image(tmp_path / name, (32, 32))
    # At the limit, the header passes: this one then fails for its missing image data.
    (tmp_path / "at_limit.png").write_bytes(png_declaring(8000, MAX_IMAGE_PIXELS // 8000))
    with pytest.raises(DataError, match=r"at_limit\.png: not a decodable image"):
        read_image(tmp_path / "at_limit.png", (32, 32))


def test_the_image_folder_loader_refuses_an_image_declaring_too_many_pixels(tmp_path, make_image_folder):
    fake = make_image_folder(tmp_path)
    bad = fake.path / "train" / "dog" / "0001.png"
    bad.write_bytes(png_declaring(100_000, 100_000))
    with pytest.raises(DataError, match=r"0001\.png: the image declares 100000x100000 pixels") as e:
        load_cifar10(tmp_path)
    assert str(bad) in str(e.value)
    # The real images beside it still load once it is gone.
    bad.unlink()
    data = load_cifar10(tmp_path)
    assert data.x_train.shape == (len(fake.x_train) - 1, 32, 32, 3)
