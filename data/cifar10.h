// Reading and writing CIFAR-10 in its two on-disk forms.
//
// 1. The official binary release: a folder holding data_batch_1.bin .. data_batch_5.bin (train)
//    and test_batch.bin (test), or a folder with a cifar-10-batches-bin/ subfolder holding them.
//    Each file is a sequence of 3073-byte records: 1 label byte, then 3072 pixel bytes (planes
//    R, G, B, each 32x32 row-major). An optional batches.meta.txt lists the class names, one per
//    line (CIFAR-10's names when absent).
// 2. An image folder: <root>/{train,test}/<class>/*.png|*.jpg|*.jpeg, 32x32 images. CIFAR-10's
//    class names map to its label order 0..9; any other set of class names is sorted
//    alphabetically. Files are sorted by name within a class.
// Every failure throws DataError (dataset.h) naming the file and the expected and actual facts.
#pragma once

#include <string>

#include "data/dataset.h"

namespace dsc::data {

// Reads one split, detecting the form from `path` (see above).
Dataset load_cifar10(const std::string& path, Split split);

// The two readers load_cifar10 chooses between. `folder` is the folder holding the .bin files.
Dataset read_cifar10_binary(const std::string& folder, Split split);
// `root` holds train/ and test/. threads <= 0: std::thread::hardware_concurrency().
Dataset read_image_folder(const std::string& root, Split split, int threads = 0);

// The in-memory parsers behind the two readers (the fuzz targets in tests/fuzz call them on
// arbitrary bytes). `name` is the file named in error messages.
//
// append_cifar10_records: appends the records held in `bytes` (a whole .bin file, `size` bytes)
// to `out`, whose class_names must already be set. Throws DataError when size is not a multiple of
// 3073 or a label is not below class_names.size(); `out` is unchanged then.
void append_cifar10_records(const uint8_t* bytes, size_t size, const std::string& name,
                            Dataset& out);
// parse_class_names: the class names in the text of a batches.meta.txt, one per line, spaces,
// tabs and carriage returns around a name trimmed, blank lines ignored. Throws DataError unless
// there are 1..256 names.
std::vector<std::string> parse_class_names(const std::string& text, const std::string& name);
// decode_image: decodes one PNG or JPEG file held in memory into `chw` (kImageBytes bytes: planes
// R, G, B of 32x32, row-major) and returns the file's channel count (1 gray, 2 gray+alpha, 3 RGB,
// 4 RGBA; all converted to RGB: gray replicated, alpha dropped). Throws DataError naming `name`
// when the bytes are not an image stb_image decodes or the image is not 32x32 (read from the
// header, before any pixel is decoded, so a hostile header cannot make it allocate much).
int decode_image(const uint8_t* bytes, size_t size, const std::string& name, uint8_t* chw);

// Number of train files the binary form uses, and how many images go into file k (0-based) when
// `n` images are split over them as evenly as possible (earlier files get the remainder).
inline constexpr int kTrainFiles = 5;
int64_t train_file_count(int64_t n, int k);

// Writes `train` and `test` into `folder` (created if needed) in the official binary layout:
// data_batch_1..5.bin, test_batch.bin and batches.meta.txt. Everything is written under temporary
// names and renamed into place only when all files are complete; on error the temporaries are
// removed and DataError is thrown. Both splits must have the same class names (at most 256).
void pack_cifar10(const Dataset& train, const Dataset& test, const std::string& folder);

// The data folder to use: `flag_value` if not empty (it must exist), else the first that exists
// of $CIFAR10_DIR, data/cifar10 and ../shared/cifar10 (relative to the current directory).
// Throws DataError listing every place it looked when none exists.
std::string resolve_data_path(const std::string& flag_value);

}  // namespace dsc::data
