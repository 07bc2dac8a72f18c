// `train`: the seed's CIFAR-10 training benchmark end to end (see apps/lib/trainer.h).
#include <iostream>
#include <string>
#include <vector>

#include "apps/lib/trainer.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return dsc::train_main(args, std::cout, std::cerr);
}
