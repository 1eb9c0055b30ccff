"""An Open Job Description job bundle: DIR/template.yaml + DIR/parameter_values.yaml.

One step; its CHUNK[INT] task parameter (TASK_CHUNKING extension) cuts the frames into
contiguous chunks, and each task runs `bake-seq render ... --frames {{Task.Param.Frame}}`.
Paths are PATH job parameters, so OpenJD path mapping (`openjd run --path-mapping-rules`,
Deadline Cloud storage profiles and job attachments) rewrites them for each worker.

openjd-cli reads parameter values as a plain mapping; Deadline Cloud as `parameterValues: [{name,
value}]` and refuses absolute PATH defaults in a template, so PATH parameters have no defaults and
the values file is written in the form asked for.
"""
from __future__ import annotations

import os

import yaml
from bake_seq.sequences.safe_write import write_files

from bake_seq.sequences.pattern import format_frame_ranges

from .task import FarmJob, Option


MAX_CHUNK = 150  # Deadline Cloud runs at most 150 frames in one chunk


def param_name(option: Option) -> str:
    return "".join(part.capitalize() for part in option.name.split("_"))  # ocio_config -> OcioConfig


def path_parameters(job: FarmJob) -> dict[str, tuple[str, dict]]:
    """name -> (value, definition) of every PATH job parameter."""
    plate_dir, plate_name = os.path.split(job.plate)
    out_dir, out_name = os.path.split(job.output)
    found = {
        "BakeSeq": (job.exe, {"objectType": "FILE", "description": "bake-seq executable on the workers"}),
        "PlateFolder": (plate_dir, {"objectType": "DIRECTORY", "dataFlow": "IN",
                                    "description": f"folder of the plate frames ({plate_name})"}),
        "OutputFolder": (out_dir, {"objectType": "DIRECTORY", "dataFlow": "OUT",
                                   "description": f"folder the frames are written to ({out_name})"}),
    }
    for option in job.options:
        if option.is_path:
            found[param_name(option)] = (option.value, {"objectType": "FILE", "dataFlow": "IN",
                                                         "description": f"{option.flag} for bake-seq render"})
    return found


def other_values(job: FarmJob) -> dict:
    return {"PlateName": os.path.basename(job.plate), "OutputName": os.path.basename(job.output),
            "Frames": format_frame_ranges(job.frames), "ChunkSize": job.chunk}


def literal_arguments(job: FarmJob) -> dict[str, str]:
    """Option values holding "{{" or "}}" (a --path-map, a colour-space name): OpenJD would read
    them as expressions in the template, so they travel as STRING job parameters instead (a
    parameter's value is data, never evaluated)."""
    found = {}
    for index, option in enumerate(job.options):
        if option.value is not None and not option.is_path and ("{{" in option.value or "}}" in option.value):
            found[f"Arg{index}"] = option.value
    return found


def plain_name(text: str) -> str:
    """A job name is an OpenJD format string: braces from a plate name must not become expressions."""
    return text.replace("{{", "{ {").replace("}}", "} }")[:128]


def job_template(job: FarmJob) -> dict:
    paths = path_parameters(job)
    values = other_values(job)
    literal = literal_arguments(job)
    definitions = [{"name": name, "type": "PATH", **definition} for name, (_, definition) in paths.items()]
    definitions += [
        {"name": "PlateName", "type": "STRING", "default": values["PlateName"],
         "description": "plate frame pattern inside PlateFolder (#### = 4-digit frame number)"},
        {"name": "OutputName", "type": "STRING", "default": values["OutputName"],
         "description": "output frame pattern inside OutputFolder"},
        {"name": "Frames", "type": "STRING", "default": values["Frames"],
         "description": "frames to render, e.g. 1001-1100 or 1001-1050,1060-1100"},
        {"name": "ChunkSize", "type": "INT", "default": job.chunk, "minValue": 1, "maxValue": MAX_CHUNK,
         "description": "frames per task (each task loads the model once)"},
    ]
    definitions += [{"name": name, "type": "STRING", "description": "a render option value kept verbatim"}
                    for name in literal]
    as_parameter = {value: name for name, value in literal.items()}
    args = job.render_args("{{Task.Param.Frame}}",
                           plate="{{Param.PlateFolder}}/{{Param.PlateName}}",
                           output="{{Param.OutputFolder}}/{{Param.OutputName}}",
                           path=lambda option: "{{Param.%s}}" % param_name(option))
    args = ["{{Param.%s}}" % as_parameter[a] if a in as_parameter else a for a in args]
    frame = {"name": "Frame", "type": "CHUNK[INT]", "range": "{{Param.Frames}}",
             "chunks": {"defaultTaskCount": "{{Param.ChunkSize}}", "rangeConstraint": "CONTIGUOUS"}}
    return {
        "specificationVersion": "jobtemplate-2023-09",
        "extensions": ["TASK_CHUNKING"],
        "name": plain_name(job.name),
        "description": f"bake-seq render {job.plate} -> {job.output}",
        "parameterDefinitions": definitions,
        "steps": [{
            "name": "Render",
            "parameterSpace": {"taskParameterDefinitions": [frame]},
            "script": {"actions": {"onRun": {"command": "{{Param.BakeSeq}}", "args": args}}},
        }],
    }


def parameter_values(job: FarmJob, deadline_cloud: bool = False) -> dict:
    values = ({name: value for name, (value, _) in path_parameters(job).items()} | other_values(job)
              | literal_arguments(job))
    if deadline_cloud:
        return {"parameterValues": [{"name": name, "value": value} for name, value in values.items()]}
    return values


def check_template(template: dict) -> None:
    """What `openjd check` does, before anything is written: a template the farm would refuse
    is an error here (openjd-model ships with the farm extra; without it nothing is checked)."""
    try:
        from openjd.model import DecodeValidationError, decode_job_template
    except ImportError:
        return
    try:
        decode_job_template(template=template, supported_extensions=template.get("extensions", []))
    except DecodeValidationError as exc:
        from bake_node.errors import SettingsError
        detail = " ".join(line.strip() for line in str(exc).splitlines()[:3])[:300]
        raise SettingsError(None, f"the OpenJD job template would be refused: {detail}",
                            "remove '{{' and '}}' from --name and the plate/output names") from None


def write_bundle(job: FarmJob, folder: str, deadline_cloud: bool = False) -> list[str]:
    template = job_template(job)
    check_template(template)
    files = [(os.path.join(folder, name), yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=1000))
             for name, body in (("template.yaml", template),
                                ("parameter_values.yaml", parameter_values(job, deadline_cloud)))]
    # The bundle folder is this command's: submitting again replaces its own two files.
    return write_files(files, overwrite=True, what="job bundle", fix="choose another --bundle folder")
