#!/usr/bin/env bash
# Downloads the official CIFAR-10 binary release (Krizhevsky, 2009) from the CIFAR site, checks
# it against the MD5 published there, and unpacks it to data/cifar10/cifar-10-batches-bin/
# (data_batch_1..5.bin, test_batch.bin, batches.meta.txt), where dsc::data::load_cifar10 and the
# default data path search (resolve_data_path) find it.
#
# Usage: scripts/download_cifar10.sh [DEST]     (DEST defaults to data/cifar10 in the repository)
# Needs curl or wget, md5sum, tar. Does nothing when the six files are already there.
set -euo pipefail

URL="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
MD5="c32a1d4ab5d03f1284b67883e8d87530"  # as published on https://www.cs.toronto.edu/~kriz/cifar.html
SIZE=170052171                           # bytes
RECORD=3073                              # 1 label byte + 3072 pixel bytes

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-$repo/data/cifar10}"
archive="$dest/cifar-10-binary.tar.gz"

die() { echo "download_cifar10.sh: error: $*" >&2; exit 1; }

bin="$dest/cifar-10-batches-bin"
names="data_batch_1 data_batch_2 data_batch_3 data_batch_4 data_batch_5 test_batch"
# Prints the first problem with the unpacked files, nothing when all six are complete.
check_files() {
  for name in $names; do
    local file="$bin/$name.bin"
    if [[ ! -f "$file" ]]; then echo "$file missing"; return; fi
    local size
    size=$(stat -c %s "$file")
    if [[ "$size" -ne $((10000 * RECORD)) ]]; then
      echo "$file is $size bytes, expected 10,000 records of $RECORD bytes = $((10000 * RECORD))"
      return
    fi
  done
}
if [[ -z "$(check_files)" ]]; then
  echo "CIFAR-10 binary release already in $bin"
  exit 0
fi

mkdir -p "$dest"
echo "downloading $URL"
tmp="$archive.partial"
if command -v curl > /dev/null; then
  curl -fL --retry 3 -o "$tmp" "$URL" || die "download of $URL failed"
elif command -v wget > /dev/null; then
  wget -O "$tmp" "$URL" || die "download of $URL failed"
else
  die "neither curl nor wget is installed"
fi
actual_size=$(stat -c %s "$tmp")
actual_md5=$(md5sum "$tmp" | cut -d' ' -f1)
if [[ "$actual_md5" != "$MD5" ]]; then
  rm -f "$tmp"
  die "$URL: MD5 $actual_md5 (size $actual_size bytes), expected MD5 $MD5 (size $SIZE bytes)"
fi
mv "$tmp" "$archive"

tar -xzf "$archive" -C "$dest" || die "cannot unpack $archive into $dest"
problem="$(check_files)"
[[ -z "$problem" ]] || die "after unpacking $archive: $problem"
rm -f "$archive"
echo "CIFAR-10 binary release ready in $bin (50,000 train + 10,000 test images)"
