"""The runner's bytecode, compiled at build time and shipped beside its sources.

The runner runs from cog-server's runfiles (or an installed copy). Where Python cannot
write __pycache__ there (PYTHONDONTWRITEBYTECODE, a read-only directory, another
uid), it compiled every module at every start: ~26 ms of start -> READY and ~2 MiB of
the runner's RSS (bench/README.md). The .pyc files are checked-hash ones: Python
compares them with the source's hash, so an edited source is never run stale, and an
interpreter of another version (another cache tag) simply compiles from source.
"""

_PYTHON = "/usr/bin/python3"

def _cache_tag_impl(ctx):
    result = ctx.execute([_PYTHON, "-c", "import sys; print(sys.implementation.cache_tag)"])
    if result.return_code != 0:
        fail("%s could not say its cache tag (run scripts/setup.sh): %s" % (_PYTHON, result.stderr))
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD", "")
    ctx.file("defs.bzl", "PYTHON = %r\nCACHE_TAG = %r\n" % (_PYTHON, result.stdout.strip()))

python_cache_tag = repository_rule(
    implementation = _cache_tag_impl,
    doc = "defs.bzl: PYTHON, the build's interpreter, and CACHE_TAG, its sys.implementation.cache_tag",
    local = True,
)

_COMPILE = """
import py_compile, sys
args = sys.argv[1:]
for source, target in zip(args[0::2], args[1::2]):
    py_compile.compile(source, cfile=target, doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
"""

def _py_bytecode_impl(ctx):
    outputs = []
    args = ctx.actions.args()
    prefix = ctx.label.package + "/" if ctx.label.package else ""
    for source in ctx.files.srcs:
        if not source.short_path.startswith(prefix) or source.short_path.startswith("../"):
            fail("%s: %s is not in this package; its bytecode would not sit beside it" % (ctx.label, source.short_path))
        path = source.short_path[len(prefix):]
        directory, _, name = path.rpartition("/")
        output = ctx.actions.declare_file("%s__pycache__/%s.%s.pyc" % (
            directory + "/" if directory else "",
            name[:-len(".py")],
            ctx.attr.cache_tag,
        ))
        outputs.append(output)
        args.add(source)
        args.add(output)
    ctx.actions.run(
        executable = ctx.attr.python,
        arguments = ["-c", _COMPILE, args],
        inputs = ctx.files.srcs,
        outputs = outputs,
        mnemonic = "PyCompile",
        progress_message = "Compiling Python bytecode for %s" % ctx.label,
    )
    return [DefaultInfo(files = depset(outputs), runfiles = ctx.runfiles(files = outputs))]

py_bytecode = rule(
    implementation = _py_bytecode_impl,
    doc = "__pycache__/<name>.<cache_tag>.pyc beside each of srcs (in its package's layout)",
    attrs = {
        "srcs": attr.label_list(allow_files = [".py"]),
        "python": attr.string(mandatory = True),
        "cache_tag": attr.string(mandatory = True),
    },
)
