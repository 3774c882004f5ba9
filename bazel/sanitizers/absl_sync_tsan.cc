// ThreadSanitizer with Debian's Abseil, which is not built with TSan.
//
// TSan sees a happens-before edge only where instrumented code, or one of the
// functions it intercepts (pthread_mutex_lock, ...), makes one. absl::Mutex,
// CondVar and Notification are implemented in libabsl_synchronization.so with
// atomics and futexes that TSan never sees, so every field guarded by an
// absl::Mutex would be reported as a race. This file, linked into the
// executable by --config=tsan only, defines those members itself: each calls
// the library's own definition (found with dlsym(RTLD_NEXT)) and tells TSan
// what it did: a lock acquires, an unlock releases, a wait releases then
// acquires, Notify releases and a wait for it acquires. Definitions in the
// executable take precedence over the shared library's for every caller, the
// library itself and gRPC included.
//
// A Condition is evaluated inside the library, with the mutex held but
// sometimes on the thread that unlocks, and before the library releases the
// mutex to wait: each one passed in is wrapped so that its evaluation acquires
// and releases as a critical section would.
//
// Reader locks are treated as writer locks (readers synchronise with one
// another too): this may hide a race between two readers, never invent one.
#include <dlfcn.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/base/options.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

extern "C" {
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);

// TSan's suppressions, built in (a suppressions file named in TSAN_OPTIONS is
// looked for beside each executable). Debian's gRPC is not built with TSan
// either (nor absl_status, whose copies and compares of a call's status gRPC's
// threads run, nor absl_cord, which holds a unary call's serialized reply):
// its threads share slices, cords and sockets under synchronization TSan
// cannot see (its atomics, its event engine). TSan reported its executor's
// sendmsg() against the main thread freeing a slice buffer at shutdown, and
// the transport's copy out of a reply's Cord against the Cord's deletion when
// the call was done (both inside libabsl_cord, ordered by gRPC's refcounts).
// Accesses the interceptors see from inside these libraries are not reported;
// everything instrumented code does still is. And gRPC's callback tags,
// compiled from its headers into our code, are set on one thread and run on
// another, through libgrpc++'s completion queue, and destroyed once its
// reference count says their callback has run (uninstrumented atomics both):
// Set's and Clear's writes were reported against Run's reads, a call's batch
// of operations (CallOpSet: performed on one thread, finalized on gRPC's) and
// its interceptor bookkeeping likewise, and a call object's destruction
// (when libgrpc++ says it is done) against its last operation. A streaming
// call's completion op (the callback RunHandler gives BeginCompletionOp) reads
// the call object it captured and drops a reference; the last reference hands
// CallOnDone to libgrpc++'s executor, which frees the op on another thread:
// the read was reported against that free (the hand-off is in libgrpc++).
// The same hand-off frees the op's callback tag, whose Run had read its
// std::function before calling it (reported at the top frame, std::function's
// own code: race_top; our code has no std::function<void(bool)>, and a race on
// one of our std::functions is still reported where its invoker is read). And
// a client's unary callback (CallbackWithStatusTag: grpc_service_test's
// client) is built on the caller's thread and run on gRPC's, the call started
// in libgrpc in between.
// Only accesses inside those are let go; a race in a reactor's own callback
// (OnDone included) is still reported: its access is in our code, and the
// other access is not in one of them.
const char* __tsan_default_suppressions() {
  return "called_from_lib:libgrpc.so.29\n"
         "called_from_lib:libgrpc++.so.1.51\n"
         "called_from_lib:libgpr.so.29\n"
         "called_from_lib:libabsl_status.so.20220623\n"
         "called_from_lib:libabsl_cord.so.20220623\n"
         "called_from_lib:libabsl_cord_internal.so.20220623\n"
         "race:grpc::internal::CallbackWithSuccessTag::Set\n"
         "race:grpc::internal::CallbackWithSuccessTag::Clear\n"
         "race:grpc::internal::InterceptorBatchMethodsImpl\n"
         "race:grpc::internal::CallOpSet<\n"
         "race:ServerCallbackWriterImpl::~ServerCallbackWriterImpl\n"
         "race:ServerCallbackUnaryImpl::~ServerCallbackUnaryImpl\n"
         "race:grpc::internal::CallbackServerStreamingHandler<*>::RunHandler(*)::{lambda(bool)#1}"
         "::operator()\n"
         "race_top:std::_Function_base::_M_empty\n"
         "race_top:std::function<void (bool)>::operator()\n"
         "race:grpc::internal::CallbackWithStatusTag::Run\n";
}
}

namespace {

#define COG_STRINGIFY_INNER(x) #x
#define COG_STRINGIFY(x) COG_STRINGIFY_INNER(x)

// The library's definition of absl::<inline namespace>::<rest>, where `rest`
// is the mangled tail after the namespaces ("5Mutex4LockEv").
template <typename Fn>
Fn Real(const char* prefix, const char* rest) {
  const char* ns = COG_STRINGIFY(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  const std::string name =
      std::string(prefix) + "4absl" + std::to_string(std::strlen(ns)) + ns + rest;
  void* symbol = dlsym(RTLD_NEXT, name.c_str());
  if (symbol == nullptr) {
    std::fprintf(stderr, "absl_sync_tsan: %s not found: %s\n", name.c_str(), dlerror());
    std::abort();
  }
  return reinterpret_cast<Fn>(symbol);
}

#define REAL(prefix, rest, type) \
  static const auto real = Real<type>(prefix, rest)

void Acquire(const void* addr) { __tsan_acquire(const_cast<void*>(addr)); }
void Release(const void* addr) { __tsan_release(const_cast<void*>(addr)); }

// A Condition that acquires `mu`'s edges before it evaluates the original.
struct Wrapped {
  const absl::Condition* original;
  const absl::Mutex* mu;
};

// The library evaluates a condition with the mutex held, and may then release
// it without our seeing: the evaluation acquires and releases as a critical
// section of its own would.
bool EvalWrapped(void* arg) {
  // The waiter made `arg` (and the condition) before it entered the library;
  // the thread evaluating may be another one.
  Acquire(arg);
  const Wrapped* wrapped = static_cast<const Wrapped*>(arg);
  Acquire(wrapped->mu);
  const bool result = wrapped->original->Eval();
  Release(wrapped->mu);
  return result;
}

// The address of Notification::notified_yet_, which the inline
// HasBeenNotified() reads with an (instrumented) acquire load.
struct NotificationLayout {
  absl::Mutex mutex;
  std::atomic<bool> notified_yet;
};
static_assert(sizeof(NotificationLayout) == sizeof(absl::Notification),
              "absl::Notification's layout changed");

const void* NotifiedYet(const absl::Notification* notification) {
  return reinterpret_cast<const char*>(notification) + offsetof(NotificationLayout, notified_yet);
}

// Abseil's own deadlock detection (on in builds without NDEBUG: the tests)
// keeps a global lock graph behind a spin lock of the library's, which TSan
// cannot see either: it reported the graph's bookkeeping as a race between
// gRPC's timer and executor threads. TSan finds lock-order inversions itself
// (detect_deadlocks), so under TSan Abseil's detector is off.
const bool kAbslDeadlockDetectionOff = [] {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return true;
}();

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

// ---- Mutex: locks acquire, unlocks release ----

void Mutex::Lock() {
  REAL("_ZN", "5Mutex4LockEv", void (*)(Mutex*));
  real(this);
  Acquire(this);
}

void Mutex::ReaderLock() {
  REAL("_ZN", "5Mutex10ReaderLockEv", void (*)(Mutex*));
  real(this);
  Acquire(this);
}

bool Mutex::TryLock() {
  REAL("_ZN", "5Mutex7TryLockEv", bool (*)(Mutex*));
  const bool locked = real(this);
  if (locked) Acquire(this);
  return locked;
}

bool Mutex::ReaderTryLock() {
  REAL("_ZN", "5Mutex13ReaderTryLockEv", bool (*)(Mutex*));
  const bool locked = real(this);
  if (locked) Acquire(this);
  return locked;
}

void Mutex::Unlock() {
  REAL("_ZN", "5Mutex6UnlockEv", void (*)(Mutex*));
  Release(this);
  real(this);
}

void Mutex::ReaderUnlock() {
  REAL("_ZN", "5Mutex12ReaderUnlockEv", void (*)(Mutex*));
  Release(this);
  real(this);
}

// ---- Mutex: conditional locks ----

void Mutex::LockWhen(const Condition& cond) {
  REAL("_ZN", "5Mutex8LockWhenERKNS0_9ConditionE", void (*)(Mutex*, const Condition&));
  Wrapped wrapped{&cond, this};
  Release(&wrapped);
  real(this, Condition(&EvalWrapped, &wrapped));
  Acquire(this);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  REAL("_ZN", "5Mutex14ReaderLockWhenERKNS0_9ConditionE", void (*)(Mutex*, const Condition&));
  Wrapped wrapped{&cond, this};
  Release(&wrapped);
  real(this, Condition(&EvalWrapped, &wrapped));
  Acquire(this);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  REAL("_ZN", "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE",
       bool (*)(Mutex*, const Condition&, absl::Duration));
  Wrapped wrapped{&cond, this};
  Release(&wrapped);
  const bool result = real(this, Condition(&EvalWrapped, &wrapped), timeout);
  Acquire(this);  // held either way
  return result;
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  REAL("_ZN", "5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE",
       bool (*)(Mutex*, const Condition&, absl::Duration));
  Wrapped wrapped{&cond, this};
  Release(&wrapped);
  const bool result = real(this, Condition(&EvalWrapped, &wrapped), timeout);
  Acquire(this);
  return result;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  REAL("_ZN", "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE",
       bool (*)(Mutex*, const Condition&, absl::Time));
  Wrapped wrapped{&cond, this};
  Release(&wrapped);
  const bool result = real(this, Condition(&EvalWrapped, &wrapped), deadline);
  Acquire(this);
  return result;
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  REAL("_ZN", "5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE",
       bool (*)(Mutex*, const Condition&, absl::Time));
  Wrapped wrapped{&cond, this};
  Release(&wrapped);
  const bool result = real(this, Condition(&EvalWrapped, &wrapped), deadline);
  Acquire(this);
  return result;
}

// ---- Mutex: waits release, then acquire ----

void Mutex::Await(const Condition& cond) {
  REAL("_ZN", "5Mutex5AwaitERKNS0_9ConditionE", void (*)(Mutex*, const Condition&));
  Wrapped wrapped{&cond, this};
  Release(&wrapped);
  Release(this);
  real(this, Condition(&EvalWrapped, &wrapped));
  Acquire(this);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, absl::Duration timeout) {
  REAL("_ZN", "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE",
       bool (*)(Mutex*, const Condition&, absl::Duration));
  Wrapped wrapped{&cond, this};
  Release(&wrapped);
  Release(this);
  const bool result = real(this, Condition(&EvalWrapped, &wrapped), timeout);
  Acquire(this);
  return result;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, absl::Time deadline) {
  REAL("_ZN", "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE",
       bool (*)(Mutex*, const Condition&, absl::Time));
  Wrapped wrapped{&cond, this};
  Release(&wrapped);
  Release(this);
  const bool result = real(this, Condition(&EvalWrapped, &wrapped), deadline);
  Acquire(this);
  return result;
}

// ---- CondVar: a wait releases the mutex, then acquires it ----

void CondVar::Wait(Mutex* mu) {
  REAL("_ZN", "7CondVar4WaitEPNS0_5MutexE", void (*)(CondVar*, Mutex*));
  Release(mu);
  real(this, mu);
  Acquire(mu);
}

bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
  REAL("_ZN", "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE",
       bool (*)(CondVar*, Mutex*, absl::Duration));
  Release(mu);
  const bool result = real(this, mu, timeout);
  Acquire(mu);
  return result;
}

bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline) {
  REAL("_ZN", "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE",
       bool (*)(CondVar*, Mutex*, absl::Time));
  Release(mu);
  const bool result = real(this, mu, deadline);
  Acquire(mu);
  return result;
}

// ---- Notification: Notify releases, a wait for it acquires ----

void Notification::Notify() {
  REAL("_ZN", "12Notification6NotifyEv", void (*)(Notification*));
  Release(this);
  Release(NotifiedYet(this));
  real(this);
}

void Notification::WaitForNotification() const {
  REAL("_ZNK", "12Notification19WaitForNotificationEv", void (*)(const Notification*));
  real(this);
  Acquire(this);
}

bool Notification::WaitForNotificationWithTimeout(absl::Duration timeout) const {
  REAL("_ZNK", "12Notification30WaitForNotificationWithTimeoutENS0_8DurationE",
       bool (*)(const Notification*, absl::Duration));
  const bool notified = real(this, timeout);
  Acquire(this);
  return notified;
}

bool Notification::WaitForNotificationWithDeadline(absl::Time deadline) const {
  REAL("_ZNK", "12Notification31WaitForNotificationWithDeadlineENS0_4TimeE",
       bool (*)(const Notification*, absl::Time));
  const bool notified = real(this, deadline);
  Acquire(this);
  return notified;
}

ABSL_NAMESPACE_END
}  // namespace absl
