#!/bin/bash
# tests/package/ensure-deb.sh [OUT_DIR]: makes sure OUT_DIR (default build-deb/ of the repository) holds the package
# of this tree, for the suites that install it (the systemd label: tests/systemd/CMakeLists.txt's fixture). The
# package there is used when no file of the tree (the ones build-deb.sh copies) is newer than it; else
# tests/package/build-deb.sh builds it (dpkg-buildpackage and lintian: about 2 minutes on 2 cores). tests/run.sh
# builds it in the background of the host suites, so that this finds it.
# Exit status: 0 with the package's path on the last line of stdout; build-deb.sh's when it had to build and failed.
set -euo pipefail
repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
out=${1:-$repo/build-deb}
cd "$repo"
version=$(dpkg-parsechangelog -S Version)
deb=$out/cleanup-agent_${version}_$(dpkg-architecture -qDEB_HOST_ARCH).deb
if [[ -f $deb ]]; then
    # The tests are not in the package: a changed suite does not make it old.
    newer=$(git ls-files -z --cached --others --exclude-standard -- . ':!tests' |
        xargs -0 -r sh -c 'for f; do [ "$f" -nt "$0" ] && { echo "$f"; break; }; done' "$deb" | head -n 1 || true)
    if [[ -z $newer ]]; then
        echo "ensure-deb.sh: $deb is up to date"
        echo "$deb"
        exit 0
    fi
    echo "ensure-deb.sh: $newer is newer than $deb: building it again"
fi
tests/package/build-deb.sh "$out"
echo "$deb"
