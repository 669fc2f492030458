"""The shape of one stack in hosts.yml: a compose stack (the images it pins, its health gate, its rollout, its
database) or a binary under systemd; each builds the ``model.Stack`` it describes."""
import re
import shlex
from typing import Annotated, Literal

from pydantic import BeforeValidator, Discriminator, Field, StrictBool, Tag, WithJsonSchema
from pydantic import model_validator as checks

from . import grammar, model
from .jobs import WHEN, Job
from .values import (
    AbsPath,
    EnvVar,
    FileName,
    ImageName,
    Matching,
    Names,
    Placement,
    RelPath,
    SafeName,
    Service,
    Spec,
    Whole,
    refuse,
)

TAGS = {"compose stack", "binary stack", "rollout word", "rollout settings"}   # union branches: not keys
# Folders of the operating system: a binary's live path there would replace a file the system owns.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")   # not in a job's words: one line each, joined by \x1f on the VPS
SYSTEM_PATH = re.compile(r"/(?:bin|boot|dev|etc|lib[0-9x]*|proc|run|sbin|sys|usr|var/lib)/")


class ImageSpec(Spec):
    """One image of a stack that runs several (``images:``)."""
    image: ImageName
    tag_var: EnvVar = Field(description="the variable of its image line in the compose file (each image its own)")


class DatabaseSpec(Spec):
    """The stack's PostgreSQL, which ``fab backup`` dumps and ``fab restore`` restores."""
    service: Matching(grammar.SERVICE, "must name the compose service that runs PostgreSQL")
    user: Matching(grammar.DB_NAME, "is not a PostgreSQL role name the tool accepts") | None = Field(
        None, description="the role to connect as (default: the container's POSTGRES_USER)")
    databases: Names(grammar.DB_NAME, "database names (letters, digits, _ . -)") = Field(
        [], description="the databases to dump (default: every one but the templates and postgres)")

    def build(self) -> model.Database:
        return model.Database(self.service, self.user, tuple(self.databases))


class NginxSpec(Spec):
    """nginx in front of start-first services: the tool writes its upstream blocks and reloads it."""
    service: Service = Field(description="the compose service that runs nginx, in the same stack")
    upstreams: dict[Service, Whole(1, 65535)] = Field(description="the services nginx proxies to, with their port")
    folder: FileName = Field("upstreams", description="where the upstream blocks go, beside the compose file")

    @checks(mode="after")
    def _pool(self):
        if not self.upstreams:
            raise refuse("upstreams must name the services nginx proxies to, with their port (e.g. upstreams: "
                         "{backend: 3001})", "upstreams")
        if self.service in self.upstreams:
            raise refuse(f"nginx's own service {self.service} cannot be one of its upstreams", "service")
        return self


def _command(value) -> list[str]:
    """A job's command: a string split into words as a shell would (quotes kept together; no $VARIABLE, pipe or
    &&: it runs without a shell) or a list of words; each word on one line."""
    if isinstance(value, str):
        try:
            value = shlex.split(value)
        except ValueError as e:
            raise refuse(f"cannot be split into words ({e}): quote it as a list, e.g. [sh, -c, \"...\"]") from None
    if not isinstance(value, list) or not value or len(value) > 64 or not all(
            isinstance(w, str) and w and len(w) <= 4096 and not CONTROL.search(w) for w in value):
        raise refuse("must be a command: a string or a list of 1-64 words, none empty, each on one line (no "
                     "control characters)")
    return value


Command = Annotated[list[str], BeforeValidator(_command), WithJsonSchema(
    {"anyOf": [{"type": "string", "minLength": 1}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]})]


class JobSpec(Spec):
    """A run-once job: ``docker compose run --rm`` of one of the stack's services with the release's image and
    the stack's environment (a schema migration before any of its containers is replaced)."""
    service: Service = Field(description="the compose service it runs as (its image, environment, volumes)")
    command: Command = Field(description='its words, run without a shell: "npx prisma migrate deploy", or '
                                         '[sh, -c, "..."] for one')
    when: Literal[WHEN] = Field("before", description="before: once the images are pulled, before any container "
                                "of the stack is replaced (its failure switches nothing); after: once every "
                                "stack of the release is healthy (its failure puts the previous release back)")
    timeout: Whole(1, 86400) = Field(600, description="seconds; then its container is removed and it failed")
    entrypoint: Command | None = Field(None, description="instead of the image's entrypoint (one that ignores its "
                                                         "arguments and starts the app): npx, or [sh, -c]")

    def build(self, name: str) -> Job:
        return Job(name, self.service, tuple(self.command), self.when, self.timeout, tuple(self.entrypoint or ()))


class RolloutSpec(Spec):
    """``rollout: {strategy: start-first, drain: 3, batch: 1, shared_volumes: [uploads], nginx: {...}}``."""
    strategy: Literal["stop-first", "start-first"] = "start-first"
    drain: Whole(0, 300) = Field(3, description="seconds the proxy needs to drop a container that turned unhealthy")
    batch: Whole(0, 100) = Field(0, description="replicas replaced at a time (0: all of a service's at once)")
    shared_volumes: Names(grammar.SERVICE, "the compose file's volume names") = Field(
        [], description="named volumes old and new containers may both write")
    nginx: NginxSpec | None = None

    @checks(mode="after")
    def _settings(self):
        if self.strategy == "stop-first" and self.model_fields_set - {"strategy"}:
            raise refuse("drain, batch, shared_volumes and nginx are settings of rollout: start-first")
        return self


def _strategy(value):
    if value not in ("stop-first", "start-first"):
        raise refuse(f"rollout must be stop-first (stop the old containers, then start the new) or start-first "
                     f"(new ones beside the old, behind a proxy), not {value!r}")
    return value


Rollout = Annotated[
    Annotated[Annotated[str, BeforeValidator(_strategy), WithJsonSchema({"enum": ["stop-first", "start-first"]})],
              Tag("rollout word")]
    | Annotated[RolloutSpec, Tag("rollout settings")],
    Discriminator(lambda v: "rollout word" if isinstance(v, str) else "rollout settings")]


class ComposeStack(Spec):
    """A compose stack, brought up in the system's order; it pins the images named by image: or images:."""
    compose: RelPath = Field(description="the compose file, relative to <root>/<system>")
    image: ImageName | None = Field(None, description="the one image it pins (a repository, no tag)")
    tag_var: EnvVar = Field("IMAGE_TAG", description="the variable of image:'s line in the compose file")
    images: dict[SafeName, ImageSpec] | None = Field(None, description="several images, each with its variable")
    health: Matching(grammar.URL, "must be an http(s) URL") | None = None
    wait: Whole(1, 3600) = Field(120, description="seconds the health gate waits")
    project: Matching(grammar.COMPOSE_PROJECT, "is not a compose project name (lower case letters, "
                                     "digits, '-' and '_')") | None = Field(
        None, description="keep the compose project of a stack started by hand (default <system>-<stack>)")
    scale: dict[Service, Whole(0, 100)] = Field({}, description="replicas per service, honoured by every up")
    require_healthcheck: StrictBool = Field(False, description="refuse pinned services without a healthcheck")
    env_template: Matching(grammar.FILE_NAME, "must be a file name beside the compose file (e.g. "
                                          ".env.production)") | None = None
    placeholders: Names(grammar.PLACEHOLDER, "values (one line each, 1-200 characters)") = Field(
        [], description="more values that must not stay in its .env")
    database: DatabaseSpec | None = None
    hosts: Placement = []
    rollout: Rollout = "stop-first"
    jobs: dict[SafeName, JobSpec] = Field({}, description="run-once jobs: a schema migration before the stack's "
                                                          "containers are replaced, or a task once it is healthy")

    @checks(mode="after")
    def _images(self):
        if self.images is not None:
            for key in ("image", "tag_var"):
                if key in self.model_fields_set:
                    raise refuse(f"give either {key}: or images:, not both", key)
            if not self.images:
                raise refuse("images: needs at least one image", "images")
            variables = [i.tag_var for i in self.images.values()]
            for name, spec in self.images.items():
                if variables.count(spec.tag_var) > 1:
                    raise refuse(f"two images use {spec.tag_var}: each needs its own variable, or one would run "
                                 "the other's digest", "images", name, "tag_var")
        elif "tag_var" in self.model_fields_set and not self.image:
            raise refuse("tag_var: without image: (the stack pins nothing)", "tag_var")
        return self

    def build(self, name: str) -> model.Stack:
        apps = tuple(model.App(n, i.image, i.tag_var) for n, i in (self.images or {}).items())
        if self.image:
            apps = (model.App(name, self.image, self.tag_var),)
        return model.Stack(
            name=name, compose=self.compose, apps=apps, health=self.health, wait=self.wait, project=self.project,
            scale=tuple(self.scale.items()), require_healthcheck=self.require_healthcheck,
            env_template=self.env_template, placeholders=tuple(self.placeholders),
            database=self.database and self.database.build(), binary=None, hosts=tuple(self.hosts),
            start_first=self.start_first(), jobs=tuple(j.build(n) for n, j in self.jobs.items()))

    def start_first(self) -> model.StartFirst | None:
        """``rollout: start-first`` (the word: every setting its default), or None for stop-first."""
        rollout = RolloutSpec() if self.rollout == "start-first" else self.rollout
        if not isinstance(rollout, RolloutSpec) or rollout.strategy != "start-first":
            return None
        nginx = rollout.nginx
        return model.StartFirst(rollout.drain, rollout.batch, tuple(rollout.shared_volumes), nginx and model.NginxPool(
            nginx.service, tuple(nginx.upstreams.items()), nginx.folder))


class BinarySpec(Spec):
    """seed 003's Go binary: each release in releases/<tag>/ beside ``path``, a symlink switched atomically."""
    path: AbsPath = Field(description="the live path the unit's ExecStart runs, in a folder of its own")
    unit: Matching(grammar.UNIT, "is not a systemd unit name (e.g. plantao)")
    owner: Matching(grammar.OWNER, "must be user or user:group") | None = None
    mode: Annotated[Matching(grammar.FILE_MODE, "must be an octal mode such as 0755 (quoted in YAML)"),
                    BeforeValidator(lambda v: str(v) if isinstance(v, int) and not isinstance(v, bool) else v)] = "0755"
    keep: Whole(2, 100) = Field(5, description="releases kept beside it (the live one and the one before always)")
    unit_template: RelPath | None = Field(None, description="installed by fab setup as the unit file: a template "
                                          "of the repository, under repo/")
    certs: AbsPath | None = Field(None, description="the folder its own ACME client keeps its certificates in "
                                  "(seed 003's /opt/plantao/certs): fab doctor reads their expiry and names")

    @checks(mode="after")
    def _own_folder(self):
        if self.path.count("/") < 2:
            raise refuse("must be a file in a folder of its own (e.g. /opt/plantao/escala-plantao): its releases "
                         "live beside it", "path")
        if self.unit_template is not None and not self.unit_template.startswith("repo/"):
            raise refuse(f"{self.unit_template} is not a template of the repository: unit_template must lie under "
                         "repo/ (a secret or state file would be copied into /etc/systemd/system, readable by all)",
                         "unit_template")
        if SYSTEM_PATH.match(self.path) and not self.path.startswith("/usr/local/"):
            raise refuse(f"{self.path} is the system's own (the first deploy replaces it by a symlink): put the "
                         "binary under /opt or /usr/local", "path")
        return self


class BinaryStack(Spec):
    """A stack that is one executable run by a systemd unit, not a compose file."""
    binary: BinarySpec
    health: Matching(grammar.URL, "must be an http(s) URL") | None = None
    wait: Whole(1, 3600) = Field(60, description="seconds the health gate waits")
    hosts: Placement = []

    def build(self, name: str) -> model.Stack:
        b = self.binary
        return model.Stack(
            name=name, compose=None, apps=(), health=self.health, wait=self.wait, project=None, scale=(),
            require_healthcheck=False, env_template=None, placeholders=(), database=None,
            binary=model.Binary(b.path, b.unit.removesuffix(".service"), b.owner, b.mode, b.keep, b.unit_template,
                                b.certs),
            hosts=tuple(self.hosts), start_first=None)


StackSpec = Annotated[
    Annotated[ComposeStack, Tag("compose stack")] | Annotated[BinaryStack, Tag("binary stack")],
    Discriminator(lambda v: "binary stack" if isinstance(v, dict) and "binary" in v else "compose stack")]
