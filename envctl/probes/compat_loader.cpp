// envctl libtorch compat loader: load ONE artifact from C++, run its sample inputs, save the outputs.
//
// Built inside the image against the image's own torch (compat_runner.py --build-loader) and run
// by compat_runner.py --runtime libtorch, one process per artifact.  The comparison with the
// reference outputs is the Python runner's, so both runtimes give verdicts by the same rule.
//
//   compat_loader KIND ARTIFACT INPUTS|- OUTPUTS DEVICE ERRORFILE      one artifact, then exit
//   compat_loader --serve      one request a line on stdin, "TIMEOUT\tKIND\tARTIFACT\t...": each
//                              in a forked child (libtorch is loaded once, a crash or hang ends
//                              only that child); answers "exit N", "signal N" or "timeout" a line
//   KIND: torchscript | aoti     DEVICE: cpu | cuda
//
// Exit 0: ran (OUTPUTS: a tuple of the flat outputs on the CPU, in the order the Python runner
// flattens them; with INPUTS "-" only loaded); 3: load failed; 4: run failed; 5: sample inputs
// unreadable; 6: kind not loadable from C++; 2: usage.  On 3-6 the whole error message is in
// ERRORFILE (what() without the C++ backtrace).  This parent never touches CUDA: children do.
#include <torch/script.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <thread>
#include <string>
#include <vector>

#if __has_include(<torch/csrc/inductor/aoti_package/model_package_loader.h>)
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#define ENVCTL_HAVE_AOTI 1
#endif

namespace {

int fail(const std::string& errfile, int code, const std::string& message) {
  std::ofstream(errfile, std::ios::binary) << message;
  return code;
}

std::string message_of(const std::exception& exc) {
  if (auto* err = dynamic_cast<const c10::Error*>(&exc)) {
    return std::string("RuntimeError: ") + err->what_without_backtrace();
  }
  return std::string("RuntimeError: ") + exc.what();
}

c10::IValue moved(const c10::IValue& value, const c10::Device& device) {
  if (value.isTensor()) return value.toTensor().to(device);
  if (value.isTuple()) {
    std::vector<c10::IValue> items;
    for (const auto& item : value.toTupleRef().elements()) items.push_back(moved(item, device));
    return c10::ivalue::Tuple::create(std::move(items));
  }
  if (value.isTensorList()) {
    c10::List<at::Tensor> out;
    for (const at::Tensor& t : value.toTensorList()) out.push_back(t.to(device));
    return out;
  }
  if (value.isList()) {
    auto list = value.toList();
    c10::impl::GenericList out(list.elementType());
    for (const auto& item : list) out.push_back(moved(item, device));
    return out;
  }
  return value;
}

// Tensors in the order Python's _flatten gives: sequences in order, dicts by sorted key.
void flatten(const c10::IValue& value, std::vector<c10::IValue>& out) {
  if (value.isTensor()) {
    out.push_back(value.toTensor().detach().cpu());
  } else if (value.isTuple()) {
    for (const auto& item : value.toTupleRef().elements()) flatten(item, out);
  } else if (value.isList()) {
    for (const auto& item : value.toList()) flatten(item, out);
  } else if (value.isGenericDict()) {
    std::vector<std::pair<std::string, c10::IValue>> items;
    for (const auto& kv : value.toGenericDict()) {
      if (kv.key().isString()) items.emplace_back(kv.key().toStringRef(), kv.value());
    }
    std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& kv : items) flatten(kv.second, out);
  }
}

std::vector<char> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  return std::vector<char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

int check(const std::string& kind, const std::string& artifact, const std::string& inputs_path,
          const std::string& outputs, const std::string& device_name, const std::string& errfile) {
  c10::Device device(device_name);
  torch::NoGradGuard no_grad;

  // Sample inputs: a torch.save'd tensor, tuple, list (positional) or dict (keyword arguments).
  std::vector<c10::IValue> args;
  std::unordered_map<std::string, c10::IValue> kwargs;
  if (inputs_path != "-") {
    try {
      c10::IValue inputs = moved(torch::jit::pickle_load(read_file(inputs_path)), device);
      if (inputs.isTuple()) {
        for (const auto& item : inputs.toTupleRef().elements()) args.push_back(item);
      } else if (inputs.isList()) {
        for (const auto& item : inputs.toList()) args.push_back(item);
      } else if (inputs.isGenericDict()) {
        for (const auto& kv : inputs.toGenericDict()) kwargs[kv.key().toStringRef()] = moved(kv.value(), device);
      } else {
        args.push_back(inputs);
      }
    } catch (const std::exception& exc) {
      return fail(errfile, 5, "cannot read sample inputs: " + message_of(exc));
    }
  }

  c10::IValue result;
  if (kind == "torchscript") {
    torch::jit::Module module;
    try {
      module = torch::jit::load(artifact, device);
    } catch (const std::exception& exc) {
      return fail(errfile, 3, message_of(exc));
    }
    if (inputs_path == "-") return 0;
    try {
      result = module.get_method("forward")(args, kwargs);
    } catch (const std::exception& exc) {
      return fail(errfile, 4, message_of(exc));
    }
  } else if (kind == "aoti") {
#ifdef ENVCTL_HAVE_AOTI
    std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader;
    try {
      loader = std::make_unique<torch::inductor::AOTIModelPackageLoader>(artifact);
    } catch (const std::exception& exc) {
      return fail(errfile, 3, message_of(exc));
    }
    if (inputs_path == "-") return 0;
    try {
      std::vector<at::Tensor> tensors;
      for (const auto& a : args) tensors.push_back(a.toTensor());
      result = c10::List<at::Tensor>(loader->run(tensors));
    } catch (const std::exception& exc) {
      return fail(errfile, 4, message_of(exc));
    }
#else
    return fail(errfile, 6, "this libtorch has no AOTInductor package loader");
#endif
  } else {
    return fail(errfile, 6, kind + " artifacts have no C++ loader (torch.export programs run from Python; "
                                   "compile them with AOTInductor for C++)");
  }
  try {
    std::vector<c10::IValue> flat;
    flatten(result, flat);
    std::vector<char> bytes = torch::jit::pickle_save(c10::ivalue::Tuple::create(std::move(flat)));
    std::ofstream(outputs, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  } catch (const std::exception& exc) {
    return fail(errfile, 4, "cannot save the outputs: " + message_of(exc));
  }
  return 0;
}

std::string answer(const std::vector<std::string>& f) {
  const double timeout = std::stod(f[0]);
  pid_t pid = fork();
  if (pid < 0) return "exit 1";
  if (pid == 0) {
    int code = 1;
    try {
      code = check(f[1], f[2], f[3], f[4], f[5], f[6]);
    } catch (...) {
    }
    _exit(code);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return "timeout";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
  return "exit " + std::to_string(WEXITSTATUS(status));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 7) return check(argv[1], argv[2], argv[3], argv[4], argv[5], argv[6]);
  if (argc != 2 || std::string(argv[1]) != "--serve") return 2;
  std::string line;
  while (std::getline(std::cin, line)) {
    std::vector<std::string> fields;
    std::stringstream in(line);
    for (std::string field; std::getline(in, field, '\t');) fields.push_back(field);
    std::cout << (fields.size() == 7 ? answer(fields) : std::string("exit 2")) << std::endl;
  }
  return 0;
}
