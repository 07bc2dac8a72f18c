// `compare a.jsonl b.jsonl ...`: runs side by side as a markdown table like the seed's.
#include <iostream>

#include "core/error.h"
#include "train/run_log.h"

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << "usage: compare RUN.jsonl [RUN.jsonl ...]\n"
                 "Prints training runs (JSON-lines logs written by train --log) side by side.\n";
    return argc < 2 ? 2 : 0;
  }
  try {
    std::cout << dsc::compare_runs(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
