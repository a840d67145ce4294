"""Build webdataset tars for tests: good samples from a world, and every kind of broken sample."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _picture(mode: str = "RGB", size=(80, 60)) -> Image.Image:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype("uint8"), "RGB")
    return rgb if mode == "RGB" else rgb.convert(mode)


def _meta(key: str, caption: str | None = "a red circle") -> bytes:
    payload = {"uid": f"{int(key):032x}", "url": f"http://example.test/{key}.jpg", "key": key, "sha256": "0" * 64}
    if caption is not None:
        payload["caption"] = caption
    return json.dumps(payload).encode()


# name -> (the org_caption and input_warning that a sample captioned despite a flaw must come out with)
WARNINGS = {
    "bad_utf8": (
        "caf\ufffd \ufffd",
        "the caption (.txt) is not valid UTF-8 (invalid continuation byte at byte 3); decoded with replacement "
        "characters",
    ),
}


def bad_samples() -> dict[str, tuple[dict[str, bytes], str | None]]:
    """name -> (tar members by suffix, expected error substring or None when the sample must come out ok)."""
    jpeg = _encode(_picture(), "JPEG")
    png = _encode(_picture(), "PNG")
    sixteen = Image.fromarray((np.arange(64 * 48).reshape(48, 64) * 20).astype(np.uint16))
    rgba = _picture("RGBA")
    return {
        "good": ({"jpg": jpeg, "txt": b"a red circle"}, None),
        "truncated": ({"jpg": jpeg[: len(jpeg) // 3], "txt": b"cut"}, "truncated or corrupt"),
        "truncated_png": ({"png": png[: len(png) // 2], "txt": b"cut png"}, "truncated or corrupt"),
        "random_bytes": ({"jpg": bytes(range(256)) * 4, "txt": b"noise"}, "not an image"),
        "empty": ({"jpg": b"", "txt": b"nothing"}, "empty (0 bytes)"),
        "not_an_image": ({"jpg": b"<!DOCTYPE html><html>404</html>", "txt": b"html"}, "not an image"),
        "too_many_pixels": ({"png": _encode(_picture(size=(400, 300)), "PNG"), "txt": b"big"}, "over the limit"),
        "cmyk": ({"jpg": _encode(_picture("CMYK"), "JPEG"), "txt": b"cmyk"}, None),
        "sixteen_bit": ({"png": _encode(sixteen, "PNG"), "txt": b"16-bit"}, None),
        "palette": ({"png": _encode(_picture("P"), "PNG"), "txt": b"palette"}, None),
        "rgba": ({"png": _encode(rgba, "PNG"), "txt": b"alpha"}, None),
        "grayscale": ({"jpg": _encode(_picture("L"), "JPEG"), "txt": b"grey"}, None),
        "panorama": ({"jpg": _encode(_picture(size=(300, 40)), "JPEG"), "txt": b"wide"}, None),
        "no_image": ({"txt": b"caption without an image"}, "has no image"),
        "no_text": ({"jpg": jpeg, "json_no_caption": b""}, "has no caption"),
        "bad_utf8": ({"jpg": jpeg, "txt": b"caf\xe9 \xff"}, None),  # captioned, flagged (WARNINGS)
        "bad_utf8_json": (
            {"jpg": jpeg, "txt": b"ok", "json_raw": b'{"uid": "caf\xe9"}'},
            "metadata is not valid UTF-8",
        ),
        "bad_json": ({"jpg": jpeg, "txt": b"ok", "json_raw": b"{uid: 'x',"}, "not valid JSON"),
        "json_not_object": ({"jpg": jpeg, "txt": b"ok", "json_raw": b"[1, 2]"}, "not a JSON object"),
    }


def write_tar(path, samples: dict[str, dict[str, bytes]], keys: dict[str, str]) -> None:
    """Write samples (name -> members) into a tar with the given numeric keys (name -> key)."""
    with tarfile.open(path, "w") as tar:
        for name, members in samples.items():
            key = keys[name]
            files = dict(members)
            if "json_raw" in files:
                files["json"] = files.pop("json_raw")
            elif "json_no_caption" in files:
                files.pop("json_no_caption")
                files["json"] = _meta(key, caption=None)
            else:
                files["json"] = _meta(key)
            for suffix, data in files.items():
                info = tarfile.TarInfo(f"{key}.{suffix}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def bad_input_shard(path) -> dict[str, tuple[str, str | None]]:
    """Write the bad-input tar; return key -> (sample name, expected error or None)."""
    samples = bad_samples()
    keys = {name: f"{index:09d}" for index, name in enumerate(samples)}
    write_tar(path, {name: members for name, (members, _) in samples.items()}, keys)
    return {keys[name]: (name, expected) for name, (_, expected) in samples.items()}


CUT_SAMPLES, CUT_IN = 8, 4  # the cut tar holds samples 0-3 whole and 4 in part; 5-7 are lost
MISSING = "missing from the tar: img2dataset recorded this sample as downloaded in {index} but {tar} ends before it"


def _cut_caption(key: str) -> str:
    return f"a blue square number {int(key)}"


def cut_shard(path) -> dict[str, tuple[str, str | None]]:
    """Write a tar cut short inside sample CUT_IN's .txt (as a copy or transfer cut short leaves it), with
    img2dataset's index beside it (`00001.parquet` for `00001.tar`): it records samples 1-7 as downloaded, sample 0
    not at all (a key in the tar only) and an eighth sample as failed_to_download (in neither tar nor rows).

    Returns key -> (what happened to the sample, expected error substring or None when it must come out ok);
    a lost sample's uid, url and caption are its parquet record's (`cut_record`)."""
    import pathlib

    path = pathlib.Path(path)
    jpeg = _encode(_picture(), "JPEG")
    keys = [f"{index:09d}" for index in range(CUT_SAMPLES + 1)]
    samples = {key: {"jpg": jpeg, "txt": _cut_caption(key).encode()} for key in keys[:CUT_SAMPLES]}
    with tarfile.open(path, "w") as tar:
        for key, members in samples.items():
            members = {**members, "json": _meta(key, _cut_caption(key))}
            for suffix, data in members.items():
                info = tarfile.TarInfo(f"{key}.{suffix}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    with tarfile.open(path) as tar:
        cut = tar.getmember(f"{keys[CUT_IN]}.txt")
    path.write_bytes(path.read_bytes()[: cut.offset_data + cut.size // 2])
    records = [cut_record(key, "success") for key in keys[1:CUT_SAMPLES]] + [
        cut_record(keys[CUT_SAMPLES], "failed_to_download")
    ]
    pq.write_table(pa.Table.from_pylist(records), path.with_suffix(".parquet"))
    missing = MISSING.format(index=path.with_suffix(".parquet").name, tar=path.name)
    expected = {keys[0]: ("unlisted", None)}
    expected.update({key: ("whole", None) for key in keys[1:CUT_IN]})
    expected[keys[CUT_IN]] = ("damaged", "the tar is damaged")
    expected.update({key: ("lost", missing) for key in keys[CUT_IN + 1 : CUT_SAMPLES]})
    return expected


def cut_record(key: str, status: str) -> dict:
    """The row img2dataset's index holds for sample `key` of the cut shard (its columns, as img2dataset names them)."""
    downloaded = status == "success"
    return {
        "url": f"http://example.test/{key}.jpg",
        "caption": _cut_caption(key),
        "key": key,
        "status": status,
        "error_message": None if downloaded else "HTTP Error 404: Not Found",
        "width": 80 if downloaded else None,
        "height": 60 if downloaded else None,
        "original_width": 800 if downloaded else None,
        "original_height": 600 if downloaded else None,
        "sha256": f"{int(key):064x}" if downloaded else None,
        "uid": f"{int(key):032x}",
    }


def reshard(source, destination, samples_per_shard: int) -> int:
    """Split the samples of every tar in `source` into tars of `samples_per_shard`; returns the tar count."""
    import pathlib

    members: dict[str, list[tuple[tarfile.TarInfo, bytes]]] = {}
    for path in sorted(pathlib.Path(source).glob("*.tar")):
        with tarfile.open(path) as tar:
            for info in tar.getmembers():
                members.setdefault(f"{path.stem}/{info.name.split('.')[0]}", []).append(
                    (info, tar.extractfile(info).read())
                )
    keys = sorted(members)
    destination = pathlib.Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    count = 0
    for start in range(0, len(keys), samples_per_shard):
        with tarfile.open(destination / f"{count:05d}.tar", "w") as tar:
            for key in keys[start : start + samples_per_shard]:
                for info, data in members[key]:
                    tar.addfile(info, io.BytesIO(data))
        count += 1
    return count


def tar_keys(folder) -> set[tuple[str, str]]:
    """(shard name, sample key) of every sample in the tars of `folder`: what a job's output must hold once."""
    import pathlib

    keys = set()
    for path in sorted(pathlib.Path(folder).glob("*.tar")):
        with tarfile.open(path) as tar:
            keys |= {(path.stem, member.name.split(".")[0]) for member in tar.getmembers()}
    return keys
