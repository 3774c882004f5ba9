// Server temporary directories: the private directories a cog-server makes
// under $TMPDIR (the runner's socket directory, the root of the predictions'
// files), named so that a later server can tell a dead server's from a live
// one's and remove what a crash (kill -9, OOM kill) left behind.
//
// A directory is "<parent>/<prefix>-<pid>-XXXXXX", mode 0700, and this process
// holds an flock on it for as long as it lives (the lock goes with the process,
// however it ends). RemoveStaleServerTempDirs removes one only when both say
// its server is gone: its pid names no live process, and nobody holds its lock
// (a server in another PID namespace sharing the volume still does).
//
// Thread-safe.
#ifndef COG_SERVER_SERVER_TEMP_DIR_H_
#define COG_SERVER_SERVER_TEMP_DIR_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cog {

// $TMPDIR, else /tmp.
std::string TempParent();

// Makes "<parent>/<prefix>-<pid>-XXXXXX" (mode 0700) and locks it for the
// life of this process. The caller removes it when done.
absl::StatusOr<std::string> MakeServerTempDir(const std::string& parent, absl::string_view prefix);

// Removes (with everything in them) the directories under `parent` named
// "<prefix>-<pid>-XXXXXX", for each prefix, whose server is gone; the pid of
// this process counts as gone (an earlier server of the same pid, e.g. PID 1
// of a restarted container: this one made nothing yet). Leaves alone what is
// not a directory owned by this user, and every other name. Returns the paths
// removed.
std::vector<std::string> RemoveStaleServerTempDirs(const std::string& parent,
                                                   const std::vector<std::string>& prefixes);

}  // namespace cog

#endif  // COG_SERVER_SERVER_TEMP_DIR_H_
