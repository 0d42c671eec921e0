// Writes a small valid deployment file as the fuzzer's seed corpus.
#include <fstream>

#include "models/deploy/format.h"

int main(int argc, char** argv) {
  using namespace pmpl::deploy;
  std::vector<DeployTensor> tensors(3);
  tensors[0].name = "a.weight";
  tensors[0].shape = {2, 3};
  tensors[1].name = "b";
  tensors[1].dtype = DeployDType::kF16;
  tensors[1].shape = {4};
  tensors[2].name = "c.weight";  // int8: the seed is a version-2 file
  tensors[2].dtype = DeployDType::kI8;
  tensors[2].shape = {2, 5};
  const std::vector<std::vector<uint8_t>> data = {std::vector<uint8_t>(24, 7), std::vector<uint8_t>(8, 9),
                                                  std::vector<uint8_t>(10, 0xfe)};
  const std::vector<uint8_t> bytes = encode_deploy_file(R"({"format":"pmpl-model"})", tensors, data);
  std::ofstream(argc > 1 ? argv[1] : "seed.pmpl", std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}
