"""The reader's fast path for plain tars gives what `tarfile` gives, and hands every other tar to `tarfile`."""

import io
import tarfile

import pytest

from recap.stages.webdataset_reader import _NotPlain, _plain_members, list_shards, read_shard

LONG = "a-folder-whose-name-is-long/" * 4  # over tarfile's 100-byte name field


def _tar(path, format, members, *, link=False, folder=False, pax=None):
    with tarfile.open(path, "w", format=format) as tar:
        if folder:
            info = tarfile.TarInfo("sub")
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            if format == tarfile.PAX_FORMAT:
                info.mtime = 1796027033.837984  # img2dataset's writer: a float mtime, so a pax header per member
                info.pax_headers = dict(pax or {})
            tar.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo("00009.jpg")
            info.type = tarfile.SYMTYPE
            info.linkname = "00000.jpg"
            tar.addfile(info)
    return path


def _members(count, prefix=""):
    out = []
    for index in range(count):
        out += [(f"{prefix}{index:05d}.jpg", bytes([index]) * (700 + index)), (f"{prefix}{index:05d}.txt", b"caption")]
    return out


def _with_tarfile(path):
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar if m.isfile()]


@pytest.mark.parametrize("format", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT])
def test_plain_tars_take_the_fast_path_and_match_tarfile(tmp_path, format):
    for name, members, folder in (("flat", _members(5), False), ("nested", _members(3, "sub/"), True)):
        path = _tar(tmp_path / f"{name}.tar", format, members, folder=folder)
        with open(path, "rb") as handle:
            assert _plain_members(handle) == _with_tarfile(path) == members


def test_ustar_long_names_are_joined_as_tarfile_joins_them(tmp_path):
    path = _tar(tmp_path / "long.tar", tarfile.USTAR_FORMAT, _members(2, LONG))
    with open(path, "rb") as handle:
        assert _plain_members(handle) == _with_tarfile(path)


@pytest.mark.parametrize("prefix", ["", LONG + "x" * 80])
def test_pax_tars_like_img2dataset_s_take_the_fast_path(tmp_path, prefix):
    """A float mtime per member (img2dataset), and a path too long for the header (a pax `path` record)."""
    members = _members(4, prefix)
    path = _tar(tmp_path / "pax.tar", tarfile.PAX_FORMAT, members)
    with open(path, "rb") as handle:
        assert _plain_members(handle) == _with_tarfile(path) == members


@pytest.mark.parametrize(
    "format,members,link,pax",
    [
        (tarfile.PAX_FORMAT, _members(2), False, {"recap.custom": "1"}),  # a pax keyword the fast path does not know
        (tarfile.GNU_FORMAT, _members(2, LONG + "x" * 80), False, None),  # a GNU long-name member
        (tarfile.USTAR_FORMAT, _members(2), True, None),  # a symbolic link
    ],
)
def test_other_tars_go_to_tarfile_and_read_the_same(tmp_path, format, members, link, pax):
    path = _tar(tmp_path / "00000.tar", format, members, link=link, pax=pax)
    with open(path, "rb") as handle, pytest.raises(_NotPlain):
        _plain_members(handle)
    keys = [key for batch in read_shard(list_shards(str(path))[0]) for key in batch["key"]]
    assert keys == [name.partition(".")[0] for name, _ in members[::2]]


def _tarfile_keys(path):
    keys = []
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                tar.extractfile(member).read()
                keys.append(member.name.partition(".")[0])
    except tarfile.TarError:
        pass
    return list(dict.fromkeys(keys))


def test_a_cut_tar_goes_to_tarfile_and_reads_as_before(tmp_path):
    data = _tar(tmp_path / "full.tar", tarfile.USTAR_FORMAT, _members(6)).read_bytes()
    # inside a member's data: tarfile reports the damage; inside a header: tarfile stops there without a word
    for cut, damaged in ((512 * 7 + 100, True), (512 * 8 + 100, False)):
        path = tmp_path / "00001.tar"
        path.write_bytes(data[:cut])
        with open(path, "rb") as handle, pytest.raises(_NotPlain):
            _plain_members(handle)
        batches = list(read_shard(list_shards(str(path))[0]))
        assert [key for batch in batches for key in batch["key"]] == _tarfile_keys(path)
        errors = [error for batch in batches for error in batch["read_error"] if error]
        assert len(errors) == int(damaged) and all("damaged" in error for error in errors)
