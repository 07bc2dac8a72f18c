// `mobilenet`: dsc's `train` program with one more model. It registers the MobileNet-style model
// (mobilenet.h) and hands its command line to dsc::train_main, so every train flag, the run log
// and `compare` work unchanged:
//   mobilenet --model mobilenet --epochs 1 --limit-train 256 --limit-test 128 --data DIR
// (mobilenet --help lists the flags; --model also still takes dsc's own models).
#include "mobilenet.h"
#include "train/trainer.h"

int main(int argc, char** argv) {
  mobilenet::register_mobilenet();
  return dsc::train_main(argc, argv);
}
