"""A repository of cc_library targets for libraries installed from Debian.

Each target's link options and defines are read from pkg-config when the repository
is fetched, so that the build follows whatever the machine's packages declare instead
of a hand-kept list of flags.

Libraries named in `static` are linked from the archives Debian's -dev packages ship
(libX.a) instead of their shared objects. A library linked both ways would be two
copies in one process, so the choice is by library name across every target, and a
missing archive fails the fetch instead of falling back to the shared object.
`--define=system_libraries=shared` links them all shared again (--config=tsan does:
its Abseil shim interposes on the shared library), with `shared_libraries` naming
other pkg-config modules for a target where the shared objects need them.
"""

def _pkg_config(ctx, args):
    result = ctx.execute(["pkg-config"] + args)
    if result.return_code != 0:
        fail("pkg-config %s failed (run scripts/setup.sh): %s" % (" ".join(args), result.stderr))
    return [flag for flag in result.stdout.strip().split(" ") if flag]

def _is_static(ctx, library):
    for pattern in ctx.attr.static:
        if library == pattern or (pattern.endswith("*") and library.startswith(pattern[:-1])):
            return True
    return False

def _check_archive(ctx, library, checked):
    if library in checked:
        return
    result = ctx.execute(["gcc", "-print-file-name=lib%s.a" % library])
    if result.return_code != 0 or not result.stdout.strip().startswith("/"):
        fail("lib%s.a, named in `static`, is not on this machine (run scripts/setup.sh)" % library)
    checked[library] = True

def _link_statically(ctx, linkopts, checked):
    """-lX for the libraries named in `static` becomes -l:libX.a."""
    result = []
    for flag in linkopts:
        library = flag[2:] if flag.startswith("-l") else None
        if library and _is_static(ctx, library):
            _check_archive(ctx, library, checked)
            flag = "-l:lib%s.a" % library
        result.append(flag)
    return result

def _system_libraries_impl(ctx):
    lines = ['package(default_visibility = ["//visibility:public"])', ""]
    checked = {}
    for name, modules in ctx.attr.libraries.items():
        extra = ctx.attr.extra_linkopts.get(name, [])
        static = _link_statically(ctx, _pkg_config(ctx, ["--libs"] + modules) + extra, checked)
        shared = _pkg_config(ctx, ["--libs"] + ctx.attr.shared_libraries.get(name, modules)) + extra
        defines = []
        for flag in _pkg_config(ctx, ["--cflags"] + modules):
            if flag.startswith("-D"):
                defines.append(flag[2:])

            # -I flags name system include folders the compiler searches anyway.
        lines.append("cc_library(")
        lines.append("    name = %r," % name)
        if static == shared:
            lines.append("    linkopts = %r," % shared)
        else:
            lines.append("    linkopts = select({")
            lines.append("        %r: %r," % (ctx.attr.shared_setting, shared))
            lines.append("        \"//conditions:default\": %r," % static)
            lines.append("    }),")
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
        "static": attr.string_list(doc = "libraries (X of -lX; a trailing * matches a prefix) linked from libX.a"),
        "shared_libraries": attr.string_list_dict(doc = "target name -> pkg-config modules to link instead under `shared_setting`"),
        "shared_setting": attr.string(doc = "config_setting (a label in the main repository: @//…) under which `static` is ignored"),
        "headers_only": attr.string_list(doc = "header-only libraries found in /usr/include"),
    },
    local = True,
)
