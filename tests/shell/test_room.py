"""Room for a release's images (sh/images.sh: pull_room) under bash with stub docker and df: a deploy whose
images would not fit under Docker's root is refused before any pull, with the figures; one that fits, or a
disk with plenty free (no registry asked), goes on; the host's architecture's layers are the ones counted.
Fast tier."""
import pytest

from tasks.core.programs.protocol import Code

from .conftest import HERE, Lab, finished
from .test_deploy_program import deploy, pulls_answer

MANIFEST = "docker-manifest-inspect-v.txt"   # 200 MiB of layers (compressed) for amd64


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path)
    (lab.bin / "df").symlink_to(HERE / "stub")
    lab.answer("docker", "info --format {{.DockerRootDir}}", f"{lab.root}\n")
    lab.answer("docker", "image inspect --format {{range .RepoDigests}}* *", code=1)   # not here yet
    yield lab
    finished(lab)


def free(lab, mib: int) -> None:
    lab.answer("df", "-B1 --output=avail *", f"   Avail\n{mib << 20}\n")


def test_images_that_would_not_fit_refuse_the_deploy_before_any_pull(lab):
    free(lab, 700)   # two images of 200 MiB: about 800 MiB unpacked, plus the margin
    lab.answer("docker", "manifest inspect -v *", captured=MANIFEST)
    run = deploy(lab)
    assert run.code == Code.REFUSED, run.stdout
    assert "700 MiB free, about 800 MiB needed to pull and unpack them plus a margin of 336 MiB" in run.error
    assert not [c for c in lab.commands("docker") if c.startswith("pull")], "nothing pulled"
    assert not [c for c in lab.commands("docker") if c.startswith("compose") and " up " in c]


def test_images_that_fit_go_on(lab):
    free(lab, 2048)
    lab.answer("docker", "manifest inspect -v *", captured=MANIFEST)
    pulls_answer(lab)
    run = deploy(lab)
    assert run.code == 0, run.stdout
    assert run.result.one("space") == {"need": str(2 * 2 * 209715200), "avail": str(2048 << 20)}


def test_a_disk_with_plenty_free_asks_no_registry(lab):
    free(lab, 20 << 10)
    pulls_answer(lab)
    run = deploy(lab)
    assert run.code == 0, run.stdout
    assert not [c for c in lab.commands("docker") if c.startswith("manifest")]


def test_a_registry_that_says_nothing_counts_for_nothing(lab):
    free(lab, 300)
    lab.answer("docker", "manifest inspect -v *", "no such manifest\n", code=1)
    pulls_answer(lab)
    run = deploy(lab)
    assert run.code == 0, run.stdout
    assert "the registry does not say how large" in run.stdout


def test_only_the_hosts_architecture_counts(lab):
    listing = "[\n" + ",\n".join(
        f'{{"Descriptor": {{\n"platform": {{\n"architecture": "{arch}",\n"os": "linux"\n}}\n}},\n'
        f'"SchemaV2Manifest": {{\n"layers": [\n{{\n"size": {size},\n"digest": "x"\n}}\n]\n}}\n}}'
        for arch, size in (("arm64", 999), ("amd64", 100), ("unknown", 5))) + "\n]\n"
    (lab.path / "listing.json").write_text(listing)
    run = lab.snippet(f"manifest_bytes amd64 < {lab.path}/listing.json; manifest_bytes s390x < {lab.path}/listing.json",
                      {"manifest_bytes"})
    assert run.stdout.split() == ["100", "999"]
