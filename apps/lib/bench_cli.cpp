// `bench` (see bench_cli.h): flags -> LayerSpec / DeviceOptions, runs the points, prints the
// table and writes --json (JSON lines) / --csv rows. `layer` times one normal vs one DepSep layer
// per batch size; `sweep` does the same for C = K over a list of widths, recording out-of-memory
// points as status "oom" and carrying on; `device` measures and saves the ceilings. Tested in
// tests/apps/test_bench.cpp.
#include "apps/lib/bench_cli.h"

#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

#include "apps/lib/bench_device.h"
#include "core/backend.h"
#include "core/cpu/gemm.h"
#include "core/error.h"
#include "core/gpu_info.h"
#include "train/kernel_flags.h"

namespace dsc::bench {
namespace {

constexpr int kUsageError = 2;

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Flags shared by `layer` and `sweep`.
struct LayerFlags {
  std::string device = "auto", dtype;  // dtype "" = fp16 on CUDA, fp32 on the CPU
  int64_t channels = 128, filters = 128, kernel = 3;
  std::vector<int64_t> batches = {1, 16};  // layer
  std::optional<int64_t> batch;            // sweep
  std::optional<int64_t> size, height, width;
  std::vector<int64_t> channels_list;  // sweep
  std::string padding = "valid";
  bool backward = false;
  std::vector<std::string> kinds = {"normal", "depsep"};
  TimingOptions timing;
  int threads = 0;
  std::string json_path, csv_path, ceilings_path;
  bool no_ceilings = false;
  KernelFlags kernels;
};

struct DeviceFlags {
  std::string device = "auto", out;
  int64_t copy_mb = 0, gemm_n = 0;
  int threads = 0;
  TimingOptions timing;
};

void add_common(CLI::App* s, LayerFlags& f) {
  s->add_option("--device", f.device, "cpu | cuda | auto (a GPU when there is one)")
      ->capture_default_str();
  s->add_option("--dtype", f.dtype,
                "fp16 | fp32 (default: fp16 on the GPU, fp32 on the CPU; fp16 on the CPU = f16 "
                "storage, f32 compute)");
  s->add_option("--height", f.height, "input height H (overrides --size)");
  s->add_option("--width", f.width, "input width W (overrides --size)");
  s->add_option("--kernel", f.kernel, "kernel size M = N")->capture_default_str();
  s->add_option("--padding", f.padding, "valid | same | P (zero pixels per side)")
      ->capture_default_str();
  s->add_flag("--backward", f.backward,
              "time forward + backward (input and weight gradients) instead of forward only");
  s->add_option("--kinds", f.kinds,
                "which layers: normal, depsep (depthwise then pointwise, two ops, as the seed ran "
                "it), depsep-fused (one fused op: ops::depsep_conv2d)")
      ->delimiter(',')
      ->capture_default_str();
  s->add_option("--threads", f.threads, "CPU threads (0 = all cores)")->capture_default_str();
  s->add_option("--min-time", f.timing.min_time, "seconds per timed repeat (at least)")
      ->capture_default_str();
  s->add_option("--repeats", f.timing.repeats, "timed repeats (median, min, max reported)")
      ->capture_default_str();
  s->add_option("--warmup", f.timing.warmup, "untimed iterations before calibration (>= 1 run)")
      ->capture_default_str();
  s->add_option("--json", f.json_path, "write the rows as JSON lines to FILE");
  s->add_option("--csv", f.csv_path,
                "write the rows as CSV to FILE (bench/plot.py sweep reads it)");
  s->add_option("--ceilings", f.ceilings_path,
                "device ceilings JSON from `bench device`, for % of roofline (default: "
                "bench/results/ceilings_<device>.json when it exists)");
  s->add_flag("--no-ceilings", f.no_ceilings, "do not read any ceilings file");
  add_kernel_flags(*s, f.kernels);
}

Device resolve_device(const std::string& d) {
  if (d == "cpu") return Device::CPU;
  if (d == "cuda" || d == "gpu") {
    if (!device_available(Device::CUDA)) {
      throw Error("--device cuda: no usable GPU: " + device_unavailable_reason(Device::CUDA));
    }
    return Device::CUDA;
  }
  if (d == "auto") return device_available(Device::CUDA) ? Device::CUDA : Device::CPU;
  throw UsageError("--device must be cpu, cuda or auto, got '" + d + "'");
}

DType resolve_dtype(const std::string& t, Device d) {
  if (t.empty()) return d == Device::CUDA ? DType::F16 : DType::F32;
  if (t == "fp16" || t == "f16" || t == "half") return DType::F16;
  if (t == "fp32" || t == "f32" || t == "float") return DType::F32;
  throw UsageError("--dtype must be fp16 or fp32, got '" + t + "'");
}

void check_timing(const TimingOptions& t) {
  if (!(t.min_time >= 0) || t.min_time > 3600) {
    throw UsageError("--min-time must be between 0 and 3600 seconds, got " +
                     std::to_string(t.min_time));
  }
  if (t.repeats < 1 || t.repeats > 10000) {
    throw UsageError("--repeats must be between 1 and 10000, got " + std::to_string(t.repeats));
  }
  if (t.warmup < 0) throw UsageError("--warmup must be >= 0, got " + std::to_string(t.warmup));
}

void apply_threads(int threads) {
  if (threads < 0) throw UsageError("--threads must be >= 0, got " + std::to_string(threads));
  if (threads > 0) cpu::set_num_threads(threads);
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

std::string machine(Device d) {
  if (d == Device::CUDA) return gpu_description();
  return cpu_model_name() + ", " + std::to_string(cpu::num_threads()) + " threads";
}

std::string fixed2(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

// Ceilings from --ceilings, else the default file when present; prints which.
std::optional<intensity::Ceilings> load_ceilings(const LayerFlags& f, Device d, std::ostream& out,
                                                 std::ostream& err) {
  if (f.no_ceilings) {
    if (!f.ceilings_path.empty())
      throw UsageError("--ceilings and --no-ceilings exclude each other");
    out << "ceilings: none (--no-ceilings): no % of roofline\n";
    return std::nullopt;
  }
  std::string path = f.ceilings_path;
  const bool explicit_path = !path.empty();
  if (!explicit_path) path = find_default_ceilings(d);
  if (path.empty()) {
    out << "ceilings: none (no " << default_ceilings_path(d)
        << "; run `bench device` or pass --ceilings FILE): no % of roofline\n";
    return std::nullopt;
  }
  try {
    const intensity::Ceilings c = read_ceilings(path);
    out << "ceilings: " << path << " (peak " << fixed2(c.peak_flops / 1e12) << " TFLOP/s, "
        << "bandwidth " << fixed2(c.bandwidth_bytes_per_s / 1e9) << " GB/s)\n";
    return c;
  } catch (const Error& e) {
    if (explicit_path) throw UsageError(e.what());
    err << "bench: warning: ignoring the default ceilings file: " << e.what() << "\n";
    return std::nullopt;
  }
}

// Flags -> the spec of one point, validated (sizes name their flags).
LayerSpec spec_of(const LayerFlags& f, Device d, DType t, const std::string& kind, int64_t batch,
                  int64_t c, int64_t k, int64_t default_size) {
  LayerSpec s;
  s.kind = kind;
  s.device = d;
  s.dtype = t;
  s.batch = batch;
  s.channels = c;
  s.filters = k;
  const int64_t size = f.size.value_or(default_size);
  s.height = f.height.value_or(size);
  s.width = f.width.value_or(size);
  s.kernel = f.kernel;
  s.padding = f.padding;
  s.backward = f.backward;
  return s;
}

void check_spec(const LayerSpec& s, const LayerFlags& f) {
  std::vector<std::string> errors;
  // A bad --size is named as such, not as the height and width it stands for.
  if (f.size && *f.size <= 0) {
    errors.push_back("--size must be a positive integer, got " + std::to_string(*f.size));
  }
  for (const std::string& e : validate(s)) {
    if (!errors.empty() && e.find("(or --size) must be") != std::string::npos) continue;
    errors.push_back(e);
  }
  if (!errors.empty()) throw UsageError(join(errors, "; "));
}

void check_kinds(const std::vector<std::string>& kinds) {
  if (kinds.empty()) throw UsageError("--kinds: expected normal, depsep and/or depsep-fused");
  for (const auto& k : kinds) {
    if (k != "normal" && k != "depsep" && k != "depsep-fused") {
      throw UsageError("--kinds: expected normal, depsep or depsep-fused, got '" + k + "'");
    }
  }
}

std::string describe(const LayerSpec& s) {
  std::ostringstream os;
  os << s.kernel << "x" << s.kernel << " conv, " << s.height << "x" << s.width << ", padding "
     << s.padding << ", stride 1, bias, " << (s.backward ? "forward+backward" : "forward") << ", "
     << dtype_label(s.dtype)
     << (s.device == Device::CPU && s.dtype == DType::F16 ? " (f16 storage, f32 compute)" : "")
     << " on " << device_name(s.device);
  return os.str();
}

// depsep over normal for the rows of one point (one batch or width), when both kinds ran there.
void print_ratio(std::ostream& out, const std::vector<BenchRow>& point, const std::string& label) {
  auto find = [&](const char* kind) -> const BenchRow* {
    for (const BenchRow& r : point)
      if (r.kind == kind && r.status == "ok") return &r;
    return nullptr;
  };
  const BenchRow* normal = find("normal");
  const BenchRow* depsep = find("depsep");
  if (!normal || !depsep) return;
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "  depsep/normal (%s): conv/s %.2fx, time %.2fx, multiply-adds/s %.3gx\n",
                label.c_str(), *depsep->conv_per_sec / *normal->conv_per_sec,
                *depsep->seconds_per_batch / *normal->seconds_per_batch,
                *depsep->macs_per_sec / *normal->macs_per_sec);
  out << buf;
}

void print_header(std::ostream& out, const std::string& what, const LayerSpec& s,
                  const std::string& command) {
  out << what << ": " << describe(s) << "\n"
      << "machine: " << machine(s.device) << "\n"
      << "date: " << utc_now_iso8601() << ", load average (1 min): " << fixed2(load_average_1m())
      << "\ncommand: " << command << "\n";
  if (s.device == Device::CUDA) out << "kernels: " << describe(kernel_options()) << "\n";
}

void print_footer(std::ostream& out, bool cuda) {
  out << "conv/s = images per second (median over repeats, min - max in brackets); TFLOP/s counts "
         "2 FLOPs per multiply-add, \"TFLOPS\" is the seed's unit (10^12 multiply-adds/s); GB/s "
         "min = the seed's minimal traffic (params + input + output), unf = DepSep with the "
         "depthwise output written and read back; %roof = conv/s over the roofline bound (depsep: "
         "separate kernels, traffic 'unf'; depsep-fused: the fused, minimal traffic).";
  if (!cuda) {
    out << " SM%/mem% are NVML figures, n/a on the CPU. Winograd does fewer multiplies than the "
           "direct convolution the model counts: its FLOP/s and %roof are effective rates and "
           "can exceed the GEMM peak (100%).";
  }
  out << "\n";
}

// Checks the flags a layer run and a sweep share, sets the threads, and picks device and dtype.
std::pair<Device, DType> prepare_run(const LayerFlags& f) {
  const Device d = resolve_device(f.device);
  const DType t = resolve_dtype(f.dtype, d);
  check_timing(f.timing);
  check_kinds(f.kinds);
  apply_threads(f.threads);
  set_kernel_options(to_kernel_options(f.kernels));
  return {d, t};
}

// What every measured point of a layer run or a sweep shares.
RunContext make_context(const LayerFlags& f, Device d, const std::string& command,
                        std::ostream& out, std::ostream& err, const BenchHooks& hooks) {
  RunContext ctx;
  ctx.timing = f.timing;
  ctx.ceilings = load_ceilings(f, d, out, err);
  ctx.threads = cpu::num_threads();
  ctx.command = command;
  ctx.before_point = hooks.before_point;
  return ctx;
}

int run_layer(const LayerFlags& f, const std::string& command, std::ostream& out, std::ostream& err,
              const BenchHooks& hooks) {
  const auto [d, t] = prepare_run(f);
  if (f.batches.empty()) throw UsageError("--batch: expected one or more batch sizes");
  if (!f.channels_list.empty()) throw UsageError("--channels-list belongs to `bench sweep`");
  for (int64_t b : f.batches) {
    for (const auto& kind : f.kinds)
      check_spec(spec_of(f, d, t, kind, b, f.channels, f.filters, 224), f);
  }
  const LayerSpec first = spec_of(f, d, t, f.kinds[0], f.batches[0], f.channels, f.filters, 224);
  print_header(out, "bench layer", first, command);
  const RunContext ctx = make_context(f, d, command, out, err, hooks);
  RowWriter writer(f.json_path, f.csv_path);
  out << table_header() << "\n" << std::flush;
  for (int64_t b : f.batches) {
    std::vector<BenchRow> point;
    for (const auto& kind : f.kinds) {
      const BenchRow& row =
          point.emplace_back(run_point(spec_of(f, d, t, kind, b, f.channels, f.filters, 224), ctx));
      writer.write(row);
      out << table_line(row) << "\n" << std::flush;
    }
    print_ratio(out, point, "batch " + std::to_string(b));
  }
  print_footer(out, d == Device::CUDA);
  return 0;
}

int run_sweep(const LayerFlags& f, const std::string& command, std::ostream& out, std::ostream& err,
              const BenchHooks& hooks) {
  const auto [d, t] = prepare_run(f);
  const bool gpu = d == Device::CUDA;
  const int64_t batch = f.batch.value_or(gpu ? 16 : 1);
  const int64_t default_size = gpu ? 224 : 56;
  std::vector<int64_t> widths = f.channels_list;
  if (widths.empty()) {
    for (int64_t c = 8; c <= 2048; c *= 2) widths.push_back(c);
  }
  for (int64_t c : widths) {
    if (c <= 0) {
      throw UsageError("--channels-list: every width must be a positive integer, got " +
                       std::to_string(c));
    }
    for (const auto& kind : f.kinds) {
      check_spec(spec_of(f, d, t, kind, batch, c, c, default_size), f);
    }
  }
  LayerSpec first = spec_of(f, d, t, f.kinds[0], batch, widths[0], widths[0], default_size);
  print_header(out,
               "bench sweep (C = K over " + std::to_string(widths.size()) + " widths, batch " +
                   std::to_string(batch) + ")",
               first, command);
  const RunContext ctx = make_context(f, d, command, out, err, hooks);
  RowWriter writer(f.json_path, f.csv_path);
  out << table_header() << "\n" << std::flush;
  int oom = 0;
  for (int64_t c : widths) {
    std::vector<BenchRow> point;
    for (const auto& kind : f.kinds) {
      const BenchRow& row =
          point.emplace_back(run_point(spec_of(f, d, t, kind, batch, c, c, default_size), ctx));
      if (row.status == "oom") ++oom;
      writer.write(row);
      out << table_line(row) << "\n" << std::flush;
    }
    print_ratio(out, point, "C = K = " + std::to_string(c));
  }
  if (oom > 0) out << oom << " point(s) ran out of memory (status \"oom\" in the rows)\n";
  print_footer(out, gpu);
  return 0;
}

int run_device(const DeviceFlags& f, const std::string& command, std::ostream& out) {
  const Device d = resolve_device(f.device);
  check_timing(f.timing);
  apply_threads(f.threads);
  if (f.copy_mb < 0)
    throw UsageError("--copy-mb must be positive, got " + std::to_string(f.copy_mb));
  if (f.gemm_n < 0 || f.gemm_n > 65536) {
    throw UsageError("--gemm-n must be between 1 and 65536, got " + std::to_string(f.gemm_n));
  }
  const std::string path = f.out.empty() ? default_ceilings_path(d) : f.out;
  // Open the output first so an unwritable path fails before the measurement.
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (f.out.empty() && !parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
  }
  std::ofstream file(path, std::ios::trunc);
  if (!file) throw UsageError("--out: cannot write '" + path + "'");

  DeviceOptions o;
  o.device = d;
  o.copy_bytes = f.copy_mb * (int64_t(1) << 20);
  o.gemm_n = f.gemm_n;
  o.timing = f.timing;
  o.threads = cpu::num_threads();
  o.command = command;
  out << "bench device: measuring " << device_name(d) << " (" << machine(d) << ")\n" << std::flush;
  const nlohmann::ordered_json j = measure_device(o);
  file << j.dump(2) << "\n";
  file.close();
  if (!file) throw Error("--out: writing '" + path + "' failed");
  out << "peak: " << fixed2(j["peak_flops"].get<double>() / 1e9)
      << " GFLOP/s (2 per multiply-add)\n"
      << "bandwidth: " << fixed2(j["bandwidth_bytes_per_s"].get<double>() / 1e9)
      << " GB/s (bytes read + written)\n"
      << "what: " << j["what"].get<std::string>() << "\n"
      << "wrote " << path << "\n";
  return 0;
}

}  // namespace

int bench_main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
               const BenchHooks& hooks) {
  CLI::App app{
      "Single-layer benchmarks of normal vs depthwise-separable convolutions (the seed article's "
      "microbenchmark and channel sweep) and the device ceilings they are compared with.",
      "bench"};
  app.require_subcommand(1);

  LayerFlags lf;
  CLI::App* layer = app.add_subcommand(
      "layer",
      "one normal MxN conv (with bias) vs one DepSep conv (depthwise MxN, no bias, then "
      "pointwise 1x1 with bias) per batch size; defaults as the seed: 224x224, C = K = 128, "
      "3x3, padding valid, batch 1 and 16, forward");
  add_common(layer, lf);
  layer->add_option("-C,--channels", lf.channels, "input channels C")->capture_default_str();
  layer->add_option("-K,--filters", lf.filters, "output channels K")->capture_default_str();
  layer->add_option("--size", lf.size, "input height = width (default 224)");
  layer->add_option("--batch", lf.batches, "batch sizes, comma-separated")
      ->delimiter(',')
      ->capture_default_str();

  LayerFlags sf;
  CLI::App* sweep = app.add_subcommand(
      "sweep",
      "the layer benchmark for C = K in 8, 16, ..., 2048 (both kinds); an out-of-memory point is "
      "recorded with status \"oom\" and the sweep continues");
  add_common(sweep, sf);
  sweep
      ->add_option("--channels-list", sf.channels_list,
                   "widths C = K, comma-separated (default 8,16,...,2048)")
      ->delimiter(',');
  sweep->add_option("--size", sf.size,
                    "input height = width (default 224 on the GPU, 56 on the CPU)");
  sweep->add_option("--batch", sf.batch, "batch size (default 16 on the GPU, 1 on the CPU)");

  DeviceFlags df;
  CLI::App* device = app.add_subcommand(
      "device",
      "measure this machine's ceilings: memory bandwidth (a large copy) and matrix peak (a large "
      "GEMM through the framework), saved as JSON for % of roofline");
  device->add_option("--device", df.device, "cpu | cuda | auto")->capture_default_str();
  device->add_option("--out", df.out, "output file (default bench/results/ceilings_<device>.json)");
  device->add_option("--copy-mb", df.copy_mb, "MiB copied (default 256 on the CPU, 1024 on CUDA)");
  device->add_option("--gemm-n", df.gemm_n, "GEMM size n (n^3; default 2048 CPU, 8192 CUDA)");
  device->add_option("--threads", df.threads, "CPU threads (0 = all cores)")->capture_default_str();
  device->add_option("--min-time", df.timing.min_time, "seconds per timed repeat")
      ->capture_default_str();
  device->add_option("--repeats", df.timing.repeats, "timed repeats (median reported)")
      ->capture_default_str();
  device->add_option("--warmup", df.timing.warmup, "untimed iterations")->capture_default_str();

  if (!args.empty() && args[0] != "layer" && args[0] != "sweep" && args[0] != "device" &&
      args[0] != "-h" && args[0] != "--help" && args[0] != "--help-all") {
    err << "bench: error: unknown subcommand or option '" << args[0]
        << "': expected layer, sweep or device (see bench --help)\n";
    return kUsageError;
  }
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    out << app.help();
    return 0;
  } catch (const CLI::CallForAllHelp&) {
    out << app.help("", CLI::AppFormatMode::All);
    return 0;
  } catch (const CLI::ParseError& e) {
    err << "bench: error: " << e.what() << " (see bench --help)\n";
    return kUsageError;
  }

  std::string command = "bench";
  for (const std::string& a : args) command += " " + a;
  try {
    if (layer->parsed()) return run_layer(lf, command, out, err, hooks);
    if (sweep->parsed()) return run_sweep(sf, command, out, err, hooks);
    if (device->parsed()) return run_device(df, command, out);
  } catch (const UsageError& e) {
    err << "bench: error: " << e.what() << " (see bench --help)\n";
    return kUsageError;
  } catch (const std::exception& e) {
    err << "bench: error: " << e.what() << "\n";
    return 1;
  }
  return kUsageError;
}

}  // namespace dsc::bench
