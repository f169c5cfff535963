"""Downloads and extraction against a real HTTP server on 127.0.0.1 serving archives built here."""

import hashlib
import io
import stat
import tarfile
import zipfile

import pytest

from tests.servers import FileServer
from tests.voc_data import make_voc_and_sbd, tar_bytes
from wsss.data.download import ArchiveError, DownloadError, download, extract

VOC_FILE = "VOCtrainval_11-May-2012.tar"


@pytest.fixture(scope="module")
def voc_archive(tmp_path_factory):
    voc, _, _ = make_voc_and_sbd(tmp_path_factory.mktemp("data"), voc_train=3, sbd_only=2, val=2)
    data = tar_bytes(voc.parent, "VOCdevkit")
    return voc, data, hashlib.md5(data).hexdigest()


def test_download_verifies_and_extracts_only_what_is_kept(voc_archive, tmp_path):
    voc, data, md5 = voc_archive
    with FileServer({VOC_FILE: data}) as server:
        path = download([f"{server.url}/files/{VOC_FILE}"], tmp_path / VOC_FILE, md5=md5, backoff_s=0)
    assert path.read_bytes() == data and not (tmp_path / f"{VOC_FILE}.part").exists()
    out = extract(path, tmp_path / "VOC2012", "VOCdevkit/VOC2012", ("JPEGImages", "ImageSets/Segmentation"))
    assert sorted(p.name for p in out.iterdir()) == ["ImageSets", "JPEGImages"]  # no Annotations, no masks
    assert sorted(p.name for p in (out / "JPEGImages").iterdir()) == sorted(
        p.name for p in (voc / "JPEGImages").iterdir()
    )
    assert (out / "ImageSets/Segmentation/val.txt").read_bytes() == (
        voc / "ImageSets/Segmentation/val.txt"
    ).read_bytes()


def test_cut_connection_resumes_with_a_range_request(voc_archive, tmp_path):
    _, data, md5 = voc_archive
    with FileServer({VOC_FILE: data}) as server:
        download([f"{server.url}/cut/{VOC_FILE}"], tmp_path / VOC_FILE, md5=md5, retries=2, backoff_s=0)
    assert (tmp_path / VOC_FILE).read_bytes() == data
    ranges = [r for _, r in server.requests]
    assert ranges[0] is None and ranges[1] == f"bytes={len(data) // 2}-"  # resumed, not restarted


def test_wrong_checksum_is_an_error_and_leaves_no_file(voc_archive, tmp_path):
    _, data, _ = voc_archive
    with FileServer({VOC_FILE: data}) as server, pytest.raises(DownloadError, match="checksum mismatch"):
        download([f"{server.url}/files/{VOC_FILE}"], tmp_path / VOC_FILE, md5="0" * 32, backoff_s=0)
    assert list(tmp_path.iterdir()) == []


def test_404_on_the_first_mirror_moves_to_the_second(voc_archive, tmp_path):
    _, data, md5 = voc_archive
    with FileServer({VOC_FILE: data}) as server:
        download(
            [f"{server.url}/gone/{VOC_FILE}", f"{server.url}/files/{VOC_FILE}"],
            tmp_path / VOC_FILE,
            md5=md5,
            retries=3,
            backoff_s=0,
        )
    assert [path for path, _ in server.requests] == [f"/gone/{VOC_FILE}", f"/files/{VOC_FILE}"]  # no retry on 404
    assert (tmp_path / VOC_FILE).read_bytes() == data


def test_every_mirror_failing_names_each_failure(tmp_path):
    with FileServer({}) as server, pytest.raises(DownloadError) as error:
        download([f"{server.url}/a/x.tar", f"{server.url}/b/x.tar"], tmp_path / "x.tar", md5="0" * 32, backoff_s=0)
    assert "/a/x.tar: HTTP 404" in str(error.value) and "/b/x.tar: HTTP 404" in str(error.value)


def unsafe_archive(kind: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        good = tarfile.TarInfo("VOCdevkit/VOC2012/JPEGImages/a.jpg")
        good.size = 3
        tar.addfile(good, io.BytesIO(b"abc"))
        member = tarfile.TarInfo(
            {
                "dotdot": "VOCdevkit/VOC2012/../../evil.txt",
                "absolute": "/tmp/evil.txt",
                "symlink": "VOCdevkit/VOC2012/JPEGImages/link",
                "device": "VOCdevkit/VOC2012/dev",
            }[kind]
        )
        if kind == "symlink":
            member.type, member.linkname = tarfile.SYMTYPE, "../../../../etc/passwd"
        elif kind == "device":
            member.type = tarfile.CHRTYPE
        else:
            member.size = 4
        tar.addfile(member, io.BytesIO(b"evil") if member.isfile() else None)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "device"])
def test_unsafe_members_are_rejected_before_anything_is_written(kind, tmp_path):
    archive = tmp_path / "bad.tar"
    archive.write_bytes(unsafe_archive(kind))
    with pytest.raises(ArchiveError, match="refusing to extract member"):
        extract(archive, tmp_path / "out" / "VOC2012", "VOCdevkit/VOC2012")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()


def test_truncated_archive_leaves_nothing_half_extracted(voc_archive, tmp_path):
    _, data, _ = voc_archive
    archive = tmp_path / VOC_FILE
    archive.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ArchiveError, match=VOC_FILE):
        extract(archive, tmp_path / "VOC2012", "VOCdevkit/VOC2012")
    assert sorted(p.name for p in tmp_path.iterdir()) == [VOC_FILE]


COCO_IMAGES = {f"train2014/COCO_train2014_{i:012d}.jpg": bytes(range(i, i + 200)) * 5 for i in (9, 25, 30)}


def zip_bytes(members: dict, compression: int = zipfile.ZIP_STORED) -> bytes:
    """A zip of members (name: bytes, or name: ZipInfo-and-bytes pair); names ending in '/' are directories."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            if isinstance(data, tuple):
                archive.writestr(*data)
            else:
                archive.writestr(name, data)  # a name ending in '/' is a directory entry
    return buffer.getvalue()


def test_coco_image_zip_extracts_member_root_directly_into_dest(tmp_path):
    archive = tmp_path / "train2014.zip"
    archive.write_bytes(zip_bytes({"train2014/": b"", **COCO_IMAGES, "train2014/sub/": b""}))
    out = extract(archive, tmp_path / "coco" / "train2014", "train2014")
    assert sorted(p.name for p in out.iterdir()) == sorted([*(n.split("/")[1] for n in COCO_IMAGES), "sub"])
    assert all((out / name.split("/")[1]).read_bytes() == data for name, data in COCO_IMAGES.items())
    assert (out / "sub").is_dir()  # directory entries are created
    assert sorted(p.name for p in (tmp_path / "coco").iterdir()) == ["train2014"]  # no temporary directory left


def test_zip_keep_selects_two_annotation_files(tmp_path):
    names = ["captions_train2014", "instances_train2014", "instances_val2014", "person_keypoints_val2014"]
    archive = tmp_path / "annotations_trainval2014.zip"
    archive.write_bytes(
        zip_bytes({"annotations/": b"", **{f"annotations/{n}.json": n.encode() for n in names}}, zipfile.ZIP_DEFLATED)
    )
    keep = ("instances_train2014.json", "instances_val2014.json")
    out = extract(archive, tmp_path / "annotations", "annotations", keep)
    assert sorted(p.name for p in out.iterdir()) == list(keep)
    assert (out / "instances_val2014.json").read_bytes() == b"instances_val2014"


def test_zip_is_told_by_content_not_name(tmp_path):
    """A zip named .tar is a zip; a tar whose last member is a zip (zipfile.is_zipfile says yes) is a tar."""
    inner = zip_bytes(COCO_IMAGES)
    (tmp_path / "a.tar").write_bytes(inner)
    assert len(list(extract(tmp_path / "a.tar", tmp_path / "a", "train2014").iterdir())) == len(COCO_IMAGES)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        member = tarfile.TarInfo("data/inner.zip")
        member.size = len(inner)
        tar.addfile(member, io.BytesIO(inner))
    (tmp_path / "b.zip").write_bytes(buffer.getvalue())
    assert zipfile.is_zipfile(tmp_path / "b.zip")
    assert (extract(tmp_path / "b.zip", tmp_path / "b", "data") / "inner.zip").read_bytes() == inner


def unsafe_zip(kind: str, tmp_path) -> tuple[bytes, str]:
    """A zip with one good member and one unsafe one, and the unsafe member's name."""
    name = {
        "absolute": str(tmp_path / "evil.txt"),
        "drive": "C:/evil.txt",
        "backslash": "\\evil.txt",
        "dotdot": "train2014/../../evil.txt",
        "symlink": "train2014/link",
        "nul": "train2014/evil\0.txt",
    }[kind]
    info = zipfile.ZipInfo(name.replace("\0", "X"))
    data = b"evil"
    if kind == "symlink":
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        data = b"../../../../etc/passwd"
    raw = zip_bytes({"train2014/a.jpg": b"abc", name: (info, data)})
    if kind == "nul":  # zipfile cuts a name at NUL when writing: put the NUL in both headers by hand
        raw = raw.replace(b"evilX.txt", b"evil\0.txt")
    return raw, name


@pytest.mark.parametrize("kind", ["absolute", "drive", "backslash", "dotdot", "symlink", "nul"])
def test_unsafe_zip_members_are_rejected_before_anything_is_written(kind, tmp_path):
    raw, name = unsafe_zip(kind, tmp_path)
    archive = tmp_path / "bad.zip"
    archive.write_bytes(raw)
    with pytest.raises(ArchiveError, match="refusing to extract member") as error:
        extract(archive, tmp_path / "out" / "train2014", "train2014")
    assert repr(name) in str(error.value) and "bad.zip" in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.zip"]  # no dest, no temporary directory


def test_truncated_zip_leaves_nothing(tmp_path):
    data = zip_bytes(COCO_IMAGES)
    archive = tmp_path / "train2014.zip"
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArchiveError, match="train2014.zip"):
        extract(archive, tmp_path / "train2014", "train2014")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train2014.zip"]


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_zip_member_with_flipped_bytes_names_archive_and_member(compression, tmp_path):
    data = bytearray(zip_bytes(COCO_IMAGES, compression))
    info = zipfile.ZipFile(io.BytesIO(data)).infolist()[1]  # the first member is written before the error
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)  # past the local file header
    data[start + info.compress_size // 2] ^= 0xFF
    archive = tmp_path / "train2014.zip"
    archive.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="train2014.zip") as error:
        extract(archive, tmp_path / "train2014", "train2014")
    assert repr(info.filename) in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train2014.zip"]


def test_zip_without_members_under_member_root(tmp_path):
    archive = tmp_path / "val2014.zip"
    archive.write_bytes(zip_bytes({"val2014/COCO_val2014_000000000042.jpg": b"jpg"}))
    with pytest.raises(ArchiveError, match="no members under 'train2014'"):
        extract(archive, tmp_path / "train2014", "train2014")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["val2014.zip"]
