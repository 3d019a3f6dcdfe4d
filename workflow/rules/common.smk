# Shared helpers: config validation, the subject sheet, and input functions.
import json
import os
import shutil
import sys

from posetransfer.config import load_subjects, validate_config
from posetransfer.errors import PosetransferError

ENV = "../../envs/posetransfer.yaml"

# Rules call the `posetransfer` command: find it beside this Python when no venv is active.
if shutil.which("posetransfer") is None:
    os.environ.update(PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH")]))

# Validate before any job runs: one line naming the key or file, then stop.
try:
    _validated = validate_config(config)
    SUBJECTS = {subject.name: subject for subject in load_subjects(_validated["subjects"])}
except PosetransferError as error:
    sys.exit(f"posetransfer: config error: {error}")
config.clear()
config.update(_validated)

ANNY_MARKER = f"{config['anny_cache_dir']}/built.txt"


wildcard_constraints:
    subject="|".join(sorted(SUBJECTS)),


def synthetic_subjects():
    return [name for name, subject in SUBJECTS.items() if subject.synthetic_seed is not None]


def subject_video(wildcards):
    """The video a subject's frames come from: its file, or the rendered synthetic video."""
    subject = SUBJECTS[wildcards.subject]
    if subject.synthetic_seed is not None:
        return f"results/{subject.name}/synthetic/video.mp4"
    return subject.video


def section_json(name):
    """A config section as JSON, for a rule's command line."""
    return json.dumps(config[name], sort_keys=True)


def all_outputs():
    stages = ["frames", "pose2d", "masks", "flow", "background", "body3d", "labels3d", "texture"]
    previews = ["frames.png", "pose2d.mp4", "masks.png", "flow.png", "background.png", "body3d.mp4"]
    previews += ["labels3d.png", "texture.png"]
    outputs = expand("results/{subject}/{stage}.h5", subject=sorted(SUBJECTS), stage=stages)
    outputs += expand("results/{subject}/previews/{name}", subject=sorted(SUBJECTS), name=previews)
    outputs += expand("results/{subject}/previews/synthetic.mp4", subject=synthetic_subjects())
    outputs += expand("results/{subject}/synthetic/fit_accuracy.json", subject=synthetic_subjects())
    return outputs
