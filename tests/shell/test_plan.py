"""The plan's reads (sh/plan.sh) under bash with stub curl and docker: a tag's digest asked of the registry with
a HEAD of its manifest (basic auth, or the bearer token GHCR wants first), what is said when the registry will
not give it, and the token never in an argument. Fast tier: no root, SSH or Docker."""
from .conftest import TOKEN

DIGEST = "sha256:" + "ab" * 32
URL = "https://ghcr.io/v2/edumigsoft/ems_server/manifests/v1.4.3"


def digest_of(lab):
    head = {"SECRETS": str(lab.secrets), "REGISTRY_USER": "edumigsoft"}
    return lab.snippet('registry_digest ghcr.io/edumigsoft/ems_server v1.4.3; echo " rc=$?"', {"registry_digest"},
                       head)


def head_answer(lab, code: int, *headers: str, once: bool = False) -> None:
    lab.answer("curl", f"-sS -I --max-time 10 -K /dev/fd/* {URL}",
               "".join(f"{h}\r\n" for h in (f"HTTP/2 {code}", *headers)) + "\r\n", once=once)


def test_a_tags_digest_comes_from_a_head_of_its_manifest_with_the_token_in_no_argument(lab):
    head_answer(lab, 200, "content-type: application/vnd.oci.image.index.v1+json", f"Docker-Content-Digest: {DIGEST}")
    run = digest_of(lab)
    assert run.stdout.strip() == f"{DIGEST} rc=0", run.stdout + run.stderr
    (call,) = lab.calls("curl")
    assert "-X" not in call.argv and "application/vnd.docker.distribution.manifest.v2+json" in " ".join(call.argv)
    assert all(TOKEN not in " ".join(c.argv) for c in lab.calls())


def test_a_registry_that_wants_a_bearer_token_is_asked_for_one_first(lab):
    head_answer(lab, 200, f"docker-content-digest: {DIGEST}")   # (the second HEAD: with the bearer token)
    head_answer(lab, 401, 'www-authenticate: Bearer realm="https://ghcr.io/token",service="ghcr.io",'
                          'scope="repository:edumigsoft/ems_server:pull"', once=True)
    lab.answer("curl", "-fsS --max-time 10 -K /dev/fd/* -G --data-urlencode service=ghcr.io --data-urlencode "
                       "scope=repository:edumigsoft/ems_server:pull https://ghcr.io/token", '{"token":"djE6ZWR1"}\n')
    run = digest_of(lab)
    assert run.stdout.strip() == f"{DIGEST} rc=0", run.stdout + run.stderr
    assert len(lab.calls("curl")) == 3 and all("djE6ZWR1" not in " ".join(c.argv) for c in lab.calls())


def test_what_the_registry_says_when_it_gives_no_digest(lab):
    for answer, said in (((404,), "the registry has no such tag (404)"),
                         ((401, 'www-authenticate: Basic realm="r"'), "the registry refuses the token (401)"),
                         ((500,), "the registry answers 500"),
                         ((200, "content-type: x"), "the registry names no digest for ghcr.io/edumigsoft/ems_server:v1.4.3")):
        head_answer(lab, *answer)
        run = digest_of(lab)
        assert run.stdout.strip() == f"{said} rc=1", run.stdout
