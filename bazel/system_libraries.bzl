"""A repository of cc_library targets for libraries installed from Debian.

Each target's link options and defines are read from pkg-config when the repository
is fetched, so that the build follows whatever the machine's packages declare instead
of a hand-kept list of flags.
"""

def _pkg_config(ctx, args):
    result = ctx.execute(["pkg-config"] + args)
    if result.return_code != 0:
        fail("pkg-config %s failed (run scripts/setup.sh): %s" % (" ".join(args), result.stderr))
    return [flag for flag in result.stdout.strip().split(" ") if flag]

def _system_libraries_impl(ctx):
    lines = ['package(default_visibility = ["//visibility:public"])', ""]
    for name, modules in ctx.attr.libraries.items():
        linkopts = _pkg_config(ctx, ["--libs"] + modules)
        linkopts += ctx.attr.extra_linkopts.get(name, [])
        defines = []
        for flag in _pkg_config(ctx, ["--cflags"] + modules):
            if flag.startswith("-D"):
                defines.append(flag[2:])

            # -I flags name system include folders the compiler searches anyway.
        lines.append("cc_library(")
        lines.append("    name = %r," % name)
        lines.append("    linkopts = %r," % linkopts)
        lines.append("    defines = %r," % defines)
        lines.append(")")
        lines.append("")
    for name in ctx.attr.headers_only:
        lines.append("cc_library(name = %r)" % name)
        lines.append("")
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD", "\n".join(lines))

system_libraries = repository_rule(
    implementation = _system_libraries_impl,
    attrs = {
        "libraries": attr.string_list_dict(doc = "target name -> pkg-config modules"),
        "extra_linkopts": attr.string_list_dict(doc = "target name -> link options pkg-config omits"),
        "headers_only": attr.string_list(doc = "header-only libraries found in /usr/include"),
    },
    local = True,
)
