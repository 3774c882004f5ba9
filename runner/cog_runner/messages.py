"""The messages of proto/cog/v1/runner.proto, as tables for the wire codec.

Keep in step with runner.proto: the conformance test (tests/codec_conformance)
checks these tables against the C++ generated code, byte for byte.
"""

PROTOCOL_VERSION = 1

KIND_PREDICT = 0
KIND_TRAIN = 1

DONE_SUCCEEDED = 1
DONE_FAILED = 2
DONE_CANCELED = 3

LOG_STDOUT = 0
LOG_STDERR = 1
LOG_RUNNER = 2

METRIC_REPLACE = 0
METRIC_INCREMENT = 1
METRIC_APPEND = 2

# ---- server -> runner ----
SETUP = {1: ("weights", "string", None), 2: ("max_frame_bytes", "uint64", None), 3: ("files_dir", "string", None)}
PREDICT = {
    1: ("id", "string", None),
    2: ("kind", "enum", None),
    3: ("input_json", "bytes", None),
    4: ("context_json", "bytes", None),
    5: ("input_text_name", "string", None),
    6: ("input_text", "view", None),  # decoded in place: str() of it is the one copy
    7: ("batch_outputs", "bool", None),
    8: ("batch_text_items", "bool", None),
    9: ("output_dir", "string", None),
}
CANCEL = {1: ("id", "string", None)}
HEALTHCHECK = {1: ("sequence", "uint64", None)}
SHUTDOWN = {}

SERVER_MESSAGE = {
    1: ("setup", "member", SETUP),
    2: ("predict", "member", PREDICT),
    3: ("cancel", "member", CANCEL),
    4: ("healthcheck", "member", HEALTHCHECK),
    5: ("shutdown", "member", SHUTDOWN),
}

# ---- runner -> server ----
HELLO = {
    1: ("protocol_version", "enum", None),
    2: ("runner_version", "string", None),
    3: ("python_version", "string", None),
    4: ("pid", "uint32", None),
    5: ("openapi_json", "bytes", None),
    6: ("load_error", "string", None),
    7: ("predict_is_async", "bool", None),
    8: ("has_train", "bool", None),
    9: ("has_healthcheck", "bool", None),
    10: ("max_concurrency", "uint32", None),
    11: ("cog_version", "string", None),
    12: ("copies_outputs", "bool", None),
}
SETUP_DONE = {1: ("succeeded", "bool", None), 2: ("error", "string", None)}
LOG = {1: ("id", "string", None), 2: ("source", "enum", None), 3: ("text", "string", None)}
OUTPUT = {
    1: ("id", "string", None),
    2: ("value_json", "bytes", None),
    3: ("files_json", "bytes", None),
    4: ("value_text", "bytes", None),
    5: ("value_items", "bool", None),
}
METRIC = {
    1: ("id", "string", None),
    2: ("name", "string", None),
    3: ("value_json", "bytes", None),
    4: ("mode", "enum", None),
}
DONE = {
    1: ("id", "string", None),
    2: ("status", "enum", None),
    3: ("error", "string", None),
    4: ("output_json", "bytes", None),
    5: ("files_json", "bytes", None),
    6: ("output_text", "bytes", None),
}
HEALTHCHECK_RESULT = {
    1: ("sequence", "uint64", None),
    2: ("healthy", "bool", None),
    3: ("error", "string", None),
}

BAD_FRAME = {1: ("error", "string", None), 2: ("id", "bytes", None)}

RUNNER_MESSAGE = {
    1: ("hello", "member", HELLO),
    2: ("setup_done", "member", SETUP_DONE),
    3: ("log", "member", LOG),
    4: ("output", "member", OUTPUT),
    5: ("metric", "member", METRIC),
    6: ("done", "member", DONE),
    7: ("healthcheck_result", "member", HEALTHCHECK_RESULT),
    8: ("bad_frame", "member", BAD_FRAME),
}


def which(message: dict) -> str:
    """The name of the oneof member set in a decoded Server/RunnerMessage."""
    for name, value in message.items():
        if isinstance(value, dict):
            return name
    return ""
