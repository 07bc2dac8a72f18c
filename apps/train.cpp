// `train`: the seed's CIFAR-10 training benchmark end to end, or any registered model (see
// train/trainer.h).
#include "train/trainer.h"

int main(int argc, char** argv) { return dsc::train_main(argc, argv); }
