// What the oneDNN primitives (conv.cc, matmul.cc) share: the CPU engine, and the guard every call
// into oneDNN holds against the profiler's signal.
#pragma once
#include <pthread.h>
#include <signal.h>

#include <oneapi/dnnl/dnnl.hpp>

namespace kiln {

inline dnnl::engine& cpu() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// Holds off the profiler's sampling signal (SIGPROF) while oneDNN runs on this thread, and lets it
// in after. Measured here: with Node's --cpu-prof sampling a thread inside oneDNN 2.6's
// convolutions, the heap is corrupted within seconds (reproduced with oneDNN alone, no kiln
// code); with the signal held until the call returns, the profile is just as good and nothing
// breaks. Threads oneDNN's OpenMP starts meanwhile inherit the mask, and V8 never signals them.
class NoProfilerSignal {
 public:
  NoProfilerSignal() {
    sigset_t prof;
    sigemptyset(&prof);
    sigaddset(&prof, SIGPROF);
    pthread_sigmask(SIG_BLOCK, &prof, &saved_);
  }
  ~NoProfilerSignal() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
  NoProfilerSignal(const NoProfilerSignal&) = delete;
  NoProfilerSignal& operator=(const NoProfilerSignal&) = delete;

 private:
  sigset_t saved_;
};

}  // namespace kiln
