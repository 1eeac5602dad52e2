/*
 * A fake libnvidia-ml.so for GPU Deck's tests. NEVER shipped, never loaded by default.
 *
 * It exports the NVML entry points GPU Deck's sampler calls through nvml-wrapper, and serves the
 * devices described in the file named by $FAKE_NVML_FILE. The file is re-read whenever its inode,
 * mtime or size changes, so a test can change a reading while the app runs (the inode: two writes
 * within one tick of the kernel's coarse clock get the same mtime, and a test that writes a new
 * file and renames it over the old one changes the inode every time). Format, one record a line:
 *
 *   driver 550.54.15
 *   cuda 12040
 *   gpu IDX UUID MEM_TOTAL MEM_USED UTIL_GPU UTIL_MEM TEMP POWER_MW LIMIT_MW FAN CLK_GFX CLK_SM CLK_MEM CC_MAJ CC_MIN NAME...
 *   proc IDX PID USED_BYTES
 *
 * A numeric field of -1 makes that one call answer NVML_ERROR_NOT_SUPPORTED, as real boards do
 * for fields they lack (a passively cooled board has no fan). `fail_init 1` makes nvmlInit fail.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <pthread.h>

#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_DRIVER_NOT_LOADED 9
#define NVML_ERROR_NOT_FOUND 6

#define MAX_GPUS 64
#define MAX_PROCS 256

typedef struct {
    char uuid[96];
    char name[96];
    long long mem_total, mem_used;
    long long util_gpu, util_mem, temp, power, limit, fan, clk_gfx, clk_sm, clk_mem, cc_major, cc_minor;
} gpu_t;

typedef struct {
    int gpu;
    unsigned int pid;
    unsigned long long used;
} proc_t;

typedef struct { unsigned int pid; unsigned long long used; unsigned int gi, ci; } nvmlProcessInfo_t;
typedef struct { unsigned int version; unsigned long long total, reserved, free, used; } nvmlMemory_v2_t;
typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static gpu_t gpus[MAX_GPUS];
static proc_t procs[MAX_PROCS];
static int ngpus, nprocs, fail_init, initialized;
static char driver[80] = "550.54.15";
static long long cuda = 12040;
static time_t loaded_mtime;
static long loaded_mtime_ns;
static off_t loaded_size = -1;
static ino_t loaded_ino;

static void reload(void) {
    const char *path = getenv("FAKE_NVML_FILE");
    struct stat st;
    if (!path || stat(path, &st) != 0) { ngpus = 0; nprocs = 0; return; }
    if (st.st_ino == loaded_ino && st.st_mtime == loaded_mtime && st.st_mtim.tv_nsec == loaded_mtime_ns &&
        st.st_size == loaded_size)
        return;
    FILE *f = fopen(path, "r");
    if (!f) return;
    int ng = 0, np = 0;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (strncmp(line, "driver ", 7) == 0) {
            snprintf(driver, sizeof driver, "%.79s", line + 7);
        } else if (strncmp(line, "cuda ", 5) == 0) {
            cuda = atoll(line + 5);
        } else if (strncmp(line, "fail_init ", 10) == 0) {
            fail_init = atoi(line + 10);
        } else if (strncmp(line, "gpu ", 4) == 0 && ng < MAX_GPUS) {
            gpu_t g; int idx, off = 0;
            memset(&g, 0, sizeof g);
            if (sscanf(line + 4, "%d %95s %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %n", &idx, g.uuid,
                       &g.mem_total, &g.mem_used, &g.util_gpu, &g.util_mem, &g.temp, &g.power, &g.limit, &g.fan,
                       &g.clk_gfx, &g.clk_sm, &g.clk_mem, &g.cc_major, &g.cc_minor, &off) >= 15) {
                snprintf(g.name, sizeof g.name, "%s", line + 4 + off);
                gpus[ng++] = g;
            }
        } else if (strncmp(line, "proc ", 5) == 0 && np < MAX_PROCS) {
            proc_t p;
            if (sscanf(line + 5, "%d %u %llu", &p.gpu, &p.pid, &p.used) == 3) procs[np++] = p;
        }
    }
    fclose(f);
    ngpus = ng; nprocs = np;
    loaded_mtime = st.st_mtime; loaded_mtime_ns = st.st_mtim.tv_nsec; loaded_size = st.st_size;
    loaded_ino = st.st_ino;
}

/* Device handles are 1-based indexes cast to pointers. */
static gpu_t *dev(void *h) {
    long i = (long)h - 1;
    if (i < 0 || i >= ngpus) return NULL;
    return &gpus[i];
}

#define BEGIN(h) pthread_mutex_lock(&lock); reload(); gpu_t *g = dev(h); int rc = NVML_SUCCESS; \
    if (!initialized) rc = NVML_ERROR_UNINITIALIZED; else if (!g) rc = NVML_ERROR_INVALID_ARGUMENT; else
#define END pthread_mutex_unlock(&lock); return rc;
#define FIELD(v, out) { if ((v) < 0) rc = NVML_ERROR_NOT_SUPPORTED; else *(out) = (v); }

int nvmlInit_v2(void) {
    pthread_mutex_lock(&lock); reload();
    int rc = fail_init ? NVML_ERROR_DRIVER_NOT_LOADED : NVML_SUCCESS;
    if (rc == NVML_SUCCESS) initialized++;
    pthread_mutex_unlock(&lock);
    return rc;
}
int nvmlInitWithFlags(unsigned int flags) { (void)flags; return nvmlInit_v2(); }
int nvmlShutdown(void) { pthread_mutex_lock(&lock); if (initialized) initialized--; pthread_mutex_unlock(&lock); return NVML_SUCCESS; }
const char *nvmlErrorString(int r) {
    switch (r) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    default: return "Unknown Error";
    }
}
int nvmlSystemGetDriverVersion(char *buf, unsigned int len) {
    pthread_mutex_lock(&lock); reload(); snprintf(buf, len, "%s", driver); pthread_mutex_unlock(&lock); return NVML_SUCCESS;
}
int nvmlSystemGetCudaDriverVersion_v2(int *v) { pthread_mutex_lock(&lock); reload(); *v = (int)cuda; pthread_mutex_unlock(&lock); return NVML_SUCCESS; }
int nvmlSystemGetCudaDriverVersion(int *v) { return nvmlSystemGetCudaDriverVersion_v2(v); }
int nvmlDeviceGetCount_v2(unsigned int *n) { pthread_mutex_lock(&lock); reload(); *n = ngpus; pthread_mutex_unlock(&lock); return initialized ? NVML_SUCCESS : NVML_ERROR_UNINITIALIZED; }
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void **h) {
    pthread_mutex_lock(&lock); reload();
    int rc = i < (unsigned)ngpus ? NVML_SUCCESS : NVML_ERROR_INVALID_ARGUMENT;
    if (rc == NVML_SUCCESS) *h = (void *)(long)(i + 1);
    pthread_mutex_unlock(&lock); return rc;
}
int nvmlDeviceGetHandleByUUID(const char *uuid, void **h) {
    pthread_mutex_lock(&lock); reload(); int rc = NVML_ERROR_NOT_FOUND;
    for (int i = 0; i < ngpus; i++) if (strcmp(gpus[i].uuid, uuid) == 0) { *h = (void *)(long)(i + 1); rc = NVML_SUCCESS; }
    pthread_mutex_unlock(&lock); return rc;
}
int nvmlDeviceGetIndex(void *h, unsigned int *i) { BEGIN(h) *i = (unsigned)(g - gpus); END }
int nvmlDeviceGetName(void *h, char *buf, unsigned int len) { BEGIN(h) snprintf(buf, len, "%s", g->name); END }
int nvmlDeviceGetUUID(void *h, char *buf, unsigned int len) { BEGIN(h) snprintf(buf, len, "%s", g->uuid); END }
int nvmlDeviceGetMemoryInfo_v2(void *h, nvmlMemory_v2_t *m) {
    BEGIN(h) {
        if (g->mem_total < 0) rc = NVML_ERROR_NOT_SUPPORTED;
        else { m->total = g->mem_total; m->used = g->mem_used < 0 ? 0 : g->mem_used; m->reserved = 0; m->free = m->total - m->used; }
    } END
}
int nvmlDeviceGetUtilizationRates(void *h, nvmlUtilization_t *u) {
    BEGIN(h) {
        if (g->util_gpu < 0) rc = NVML_ERROR_NOT_SUPPORTED;
        else { u->gpu = g->util_gpu; u->memory = g->util_mem < 0 ? 0 : g->util_mem; }
    } END
}
int nvmlDeviceGetTemperature(void *h, int sensor, unsigned int *t) { BEGIN(h) { (void)sensor; FIELD(g->temp, t) } END }
/* Built with -DFAKE_NVML_OLD_DRIVER, the library lacks these symbols, as an old driver would:
 * the app must show those fields as N/A and everything else as usual. */
#ifndef FAKE_NVML_OLD_DRIVER
int nvmlDeviceGetPowerUsage(void *h, unsigned int *p) { BEGIN(h) { FIELD(g->power, p) } END }
int nvmlDeviceGetEnforcedPowerLimit(void *h, unsigned int *p) { BEGIN(h) { FIELD(g->limit, p) } END }
int nvmlDeviceGetPowerManagementLimit(void *h, unsigned int *p) { return nvmlDeviceGetEnforcedPowerLimit(h, p); }
int nvmlDeviceGetNumFans(void *h, unsigned int *n) { BEGIN(h) *n = g->fan < 0 ? 0 : 1; END }
int nvmlDeviceGetFanSpeed_v2(void *h, unsigned int fan, unsigned int *s) { BEGIN(h) { if (fan != 0) rc = NVML_ERROR_INVALID_ARGUMENT; else FIELD(g->fan, s) } END }
int nvmlDeviceGetFanSpeed(void *h, unsigned int *s) { return nvmlDeviceGetFanSpeed_v2(h, 0, s); }
#endif
int nvmlDeviceGetClockInfo(void *h, int type, unsigned int *c) {
    BEGIN(h) {
        long long v = type == 0 ? g->clk_gfx : type == 1 ? g->clk_sm : type == 2 ? g->clk_mem : -1;
        FIELD(v, c)
    } END
}
int nvmlDeviceGetCudaComputeCapability(void *h, int *maj, int *min) {
    BEGIN(h) { if (g->cc_major < 0) rc = NVML_ERROR_NOT_SUPPORTED; else { *maj = (int)g->cc_major; *min = (int)g->cc_minor; } } END
}
static int running(void *h, unsigned int *count, nvmlProcessInfo_t *out) {
    BEGIN(h) {
        unsigned int n = 0;
        long idx = g - gpus;
        for (int i = 0; i < nprocs; i++) if (procs[i].gpu == idx) n++;
        if (out == NULL || *count < n) {
            rc = n == 0 ? NVML_SUCCESS : NVML_ERROR_INSUFFICIENT_SIZE;
            *count = n;
        } else {
            unsigned int k = 0;
            for (int i = 0; i < nprocs; i++) if (procs[i].gpu == idx) {
                out[k].pid = procs[i].pid; out[k].used = procs[i].used; out[k].gi = 0xFFFFFFFF; out[k].ci = 0xFFFFFFFF; k++;
            }
            *count = k;
        }
    } END
}
#ifndef FAKE_NVML_OLD_DRIVER
int nvmlDeviceGetComputeRunningProcesses_v3(void *h, unsigned int *c, nvmlProcessInfo_t *o) { return running(h, c, o); }
#endif
int nvmlDeviceGetComputeRunningProcesses_v2(void *h, unsigned int *c, nvmlProcessInfo_t *o) { return running(h, c, o); }
