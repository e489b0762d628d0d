// The native thread a JavaScript thread's off-thread kernels run on (the kernel ABI's
// `offThread`): one per JavaScript thread that loads the addon, running its kernels one after
// another, in the order they were queued. Each call returns a promise, settled on the JavaScript
// thread once the kernel's outputs are written; the call's arguments (the arrays, the program or
// convolution) are held until then, so nothing the kernel reads or writes can be collected under it.
//
// One thread rather than libuv's pool because of the thread count the device is given: OpenMP
// keeps a team of threads for each thread that starts parallel work, and libuv would hand
// successive kernels to any of its four threads, each then with a team of its own, waking a cold
// one for most kernels. On 2 cores, a 16M-float program on 2 threads took 2.0-2.4 ms from libuv's
// pool, 1.8 from one libuv thread and 1.65 on the JavaScript thread itself. With one thread, the
// kernel thread and its team are the device's `threads`: OpenBLAS, oneDNN and the programs
// together never use more.
#pragma once

#include <napi.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace kiln {

class KernelThread {
 public:
  explicit KernelThread(Napi::Env env)
      : done_(Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                            "kiln-native-kernels", 0, 1)),
        thread_([this] { Loop(); }) {
    // An idle kernel thread must not keep the process alive; queued work does (see Queue).
    done_.Unref(env);
  }

  // At the JavaScript thread's end: the kernel running finishes, queued ones never start.
  ~KernelThread() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    ready_.notify_one();
    thread_.join();
    for (Job* job : queue_) delete job;
  }

  // Queues `work`, holding the call's object arguments until it has run; on the JavaScript thread.
  Napi::Promise Queue(const Napi::CallbackInfo& info, std::function<void()> work) {
    Napi::Env env = info.Env();
    auto* job = new Job{std::move(work), Napi::Promise::Deferred::New(env), {}, {}, false};
    for (size_t i = 0; i < info.Length(); ++i)
      if (info[i].IsObject()) job->held.push_back(Napi::Persistent(info[i].As<Napi::Object>()));
    if (pending_++ == 0) done_.Ref(env);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(job);
    }
    ready_.notify_one();
    return job->deferred.Promise();
  }

 private:
  struct Job {
    std::function<void()> work;
    Napi::Promise::Deferred deferred;
    std::vector<Napi::ObjectReference> held;
    std::string error;  // what the work threw, if it did
    bool failed;
  };

  void Loop() {
    for (;;) {
      Job* job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (stopping_) break;
        job = queue_.front();
        queue_.pop_front();
      }
      try {
        job->work();
      } catch (const std::exception& e) {
        job->failed = true;
        job->error = e.what();
      } catch (...) {
        job->failed = true;
        job->error = "a native kernel failed";
      }
      // Settled on the JavaScript thread. Where that thread is ending, the call is refused and the
      // job goes with it: its promise can no longer be awaited, and its references are the ending
      // environment's.
      done_.BlockingCall(job, [this](Napi::Env env, Napi::Function, Job* settled) { Settle(env, settled); });
    }
    done_.Release();
  }

  void Settle(Napi::Env env, Job* job) {
    if (job->failed) job->deferred.Reject(Napi::RangeError::New(env, job->error).Value());
    else job->deferred.Resolve(env.Undefined());
    delete job;
    if (--pending_ == 0) done_.Unref(env);
  }

  Napi::ThreadSafeFunction done_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Job*> queue_;  // guarded by mutex_
  bool stopping_ = false;   // guarded by mutex_
  size_t pending_ = 0;      // queued and not yet settled; the JavaScript thread's only
  std::thread thread_;      // last: it starts once everything above is made
};

}  // namespace kiln
