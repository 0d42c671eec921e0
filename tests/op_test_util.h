// What the op-family tests (tests/test_ops_*.cpp) share. Each family's file holds three kinds of
// case:
//  - OpGrad.*: a finite-difference gradient check in f64 on small random shapes with odd sizes, so
//    an indexing mistake cannot hide behind symmetric dimensions.
//  - OpRef.*: each fast path (GEMM conv, im2col, channel-vectorised loops, chunked sums) against a
//    plain loop written from the definition, in f64, within kRefTol.
//  - OpTorch.*: outputs and gradients against PyTorch's, from tests/fixtures/ops_torch.json
//    (written by tools/make_op_fixtures.py, all in float64), within kTorchTol.
#pragma once

#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/test_util.h"

namespace pmpl::test {

// OpRef: the op runs in f32, so tolerances are f32's: a sum of K products of O(1) values carries
// ~sqrt(K) * 6e-8 relative error; with K <= 300 here, 1e-5 relative plus 1e-5 absolute (for
// results near zero) leaves a wide margin over rounding while any indexing mistake is off by O(1).
inline constexpr double kRefTol = 1e-5;
// OpTorch: both sides compute in f64, so the tolerance is f64 rounding through a few dozen
// operations: 1e-10 absolute and relative.
inline constexpr double kTorchTol = 1e-10;

// An f32 copy cut from the graph: OpRef runs the op in f32 on the f64 reference's inputs.
inline Tensor f32(const Tensor& t) { return t.detach().to(DType::kF32); }

inline const nlohmann::json& torch_fixtures() {
  static const nlohmann::json data = [] {
    std::ifstream in(std::string(PMPL_SOURCE_DIR) + "/tests/fixtures/ops_torch.json");
    EXPECT_TRUE(in.good()) << "missing tests/fixtures/ops_torch.json (tools/make_op_fixtures.py)";
    nlohmann::json j;
    in >> j;
    return j;
  }();
  return data;
}

// A fixture tensor ({"shape", "data"}) as f64.
inline Tensor load_fixture(const nlohmann::json& t, bool requires_grad = false) {
  Tensor out = Tensor::from_vector(t.at("data").get<std::vector<double>>(),
                                   Shape(t.at("shape").get<std::vector<int64_t>>()));
  if (requires_grad) out.set_requires_grad(true);
  return out;
}

// Runs `fn` on the PyTorch case's inputs (named in order), compares output and every input gradient.
inline void check_torch_case(const std::string& name, const std::vector<std::string>& input_names,
                             const std::function<Tensor(const Tensors&)>& fn, double grad_tol = kTorchTol) {
  SCOPED_TRACE(name);
  const nlohmann::json& c = torch_fixtures().at("cases").at(name);
  Tensors inputs;
  for (const std::string& in : input_names) inputs.push_back(load_fixture(c.at("inputs").at(in), true));
  const Tensor y = fn(inputs);
  expect_close(y, load_fixture(c.at("output")), kTorchTol, kTorchTol, name + " output");
  y.backward(load_fixture(c.at("upstream")));
  for (size_t i = 0; i < inputs.size(); ++i) {
    expect_close(inputs[i].grad(), load_fixture(c.at("grads").at(input_names[i])), grad_tol, grad_tol,
                 name + " d" + input_names[i]);
  }
}

}  // namespace pmpl::test
