// The image ops of a transform pipeline alone, on one thread, over the files of a directory:
// for each file (in name order) read it, decode it, run the pipeline's image ops and write its
// normalised tensor into a buffer (reused, as the shard writer's buffer is); nothing is stored.
// This is the work bench/transform.py's Python loops do, measured with strata's own code
// (DecodeImage, ApplyImageOp, WriteTensor), so the two compare like with like; the transform
// command's phase adds reading from the repository and writing the shards.
//
//   image_ops_bench PIPELINE.yaml DIR [ROUNDS]   prints one JSON line per round
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "strata/env.h"
#include "transform/image_ops.h"
#include "transform/pipeline.h"

using namespace strata;

namespace {

double CpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s PIPELINE.yaml DIR [ROUNDS]\n", argv[0]);
    return 2;
  }
  Env* env = Env::Default();
  auto yaml = ReadFileToString(env, argv[1]);
  if (!yaml.ok()) return std::fprintf(stderr, "%s\n", yaml.status().ToString().c_str()), 1;
  auto p = transform::ParsePipeline(*yaml, argv[1]);
  if (!p.ok() || p->kind != transform::PipelineKind::kImage || p->normalize_index < 0) {
    std::fprintf(stderr, "%s: an image pipeline with normalize is needed\n", argv[1]);
    return 1;
  }
  auto names = env->ListDir(argv[2]);
  if (!names.ok()) return std::fprintf(stderr, "%s\n", names.status().ToString().c_str()), 1;
  std::sort(names->begin(), names->end());
  const transform::Op& norm = p->ops[p->normalize_index];
  const int rounds = argc > 3 ? std::max(1, std::atoi(argv[3])) : 1;
  std::string buffer;
  for (int round = 0; round < rounds; ++round) {
    const auto start = std::chrono::steady_clock::now();
    const double cpu = CpuSeconds();
    size_t images = 0;
    for (const std::string& name : *names) {
      auto bytes = ReadFileToString(env, JoinPath(argv[2], name));
      if (!bytes.ok()) return std::fprintf(stderr, "%s\n", bytes.status().ToString().c_str()), 1;
      std::string error;
      cv::Mat img = transform::DecodeImage({reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size()}, p->ops[0],
                                           &error);
      if (img.empty()) return std::fprintf(stderr, "%s: %s\n", name.c_str(), error.c_str()), 1;
      transform::Rng rng(0);
      for (int i = 1; i < p->normalize_index; ++i) {
        if (!transform::ApplyImageOp(p->ops[i], img, rng, &error)) {
          return std::fprintf(stderr, "%s: %s\n", name.c_str(), error.c_str()), 1;
        }
      }
      buffer.resize(img.total() * img.channels() * shard::DTypeSize(p->out_dtype));
      transform::WriteTensor(img, p->out_dtype, p->out_chw, norm.scale, norm.mean, norm.std,
                             reinterpret_cast<uint8_t*>(buffer.data()));
      ++images;
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("%s\n", fmt::format(R"({{"images": {}, "seconds": {:.4f}, "cpu_seconds": {:.4f}}})", images, secs,
                                    CpuSeconds() - cpu).c_str());
  }
  return 0;
}
