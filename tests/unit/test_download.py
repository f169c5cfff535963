"""Downloads and extraction against a real HTTP server on 127.0.0.1 serving archives built here."""

import hashlib
import io
import tarfile

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
