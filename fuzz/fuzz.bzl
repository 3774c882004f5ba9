"""cc_fuzz_target: one libFuzzer entry point (LLVMFuzzerTestOneInput), built two ways.

  <name>       With --config=fuzz (clang, -fsanitize=fuzzer): a libFuzzer binary.
               Otherwise: a binary that replays the files and folders it is given,
               to reproduce a crash under the default toolchain.
  <name>_test  Always: replays the seed corpus fuzz/corpus/<corpus>/ (a regression
               test that `bazel test //...` runs in well under a second).
"""

def cc_fuzz_target(name, srcs, corpus, deps = []):
    native.cc_library(
        name = name + "_lib",
        srcs = srcs,
        deps = deps,
        alwayslink = True,
    )
    native.cc_binary(
        name = name,
        deps = [":" + name + "_lib"] + select({
            "//fuzz:libfuzzer": [],
            "//conditions:default": ["//fuzz:replay_main"],
        }),
        linkopts = select({
            "//fuzz:libfuzzer": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
    )
    native.cc_test(
        name = name + "_test",
        size = "small",
        deps = [
            ":" + name + "_lib",
            "//fuzz:replay_main",
        ],
        args = ["fuzz/corpus/" + corpus],
        data = native.glob(["corpus/" + corpus + "/*"]),
    )
