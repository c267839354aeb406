/* Test image for the MPS e2e test (tests/tests/device_plugin_mps_e2e.rs): prints its
 * environment (`ENV K=V`), the mounts the kubelet gave it (`MOUNT <line of /proc/self/mounts>`)
 * and the entries of /dev/shm and of $CUDA_MPS_PIPE_DIRECTORY (`LS <dir>/<entry>`), then
 * "sleeping" and sleeps until SIGTERM. Built static:
 *   gcc -static -O2 -o mounts tests/images/mounts.c
 * and packed as an image with the testbed's mkimage.py (see the test's doc comment). */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

extern char **environ;

static void quit(int s) { (void)s; _exit(0); }

static void list(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) { printf("LS %s: cannot open\n", dir); return; }
  for (struct dirent *e; (e = readdir(d));)
    if (e->d_name[0] != '.') printf("LS %s/%s\n", dir, e->d_name);
  closedir(d);
}

int main(void) {
  struct sigaction a = {0};
  a.sa_handler = quit;
  sigaction(SIGTERM, &a, NULL);
  for (char **e = environ; *e; e++) printf("ENV %s\n", *e);
  FILE *m = fopen("/proc/self/mounts", "r");
  char line[1024];
  while (m && fgets(line, sizeof line, m)) printf("MOUNT %s", line);
  if (m) fclose(m);
  list("/dev/shm");
  const char *pipe = getenv("CUDA_MPS_PIPE_DIRECTORY");
  if (pipe) list(pipe);
  printf("sleeping\n");
  fflush(stdout);
  for (;;) pause();
}
