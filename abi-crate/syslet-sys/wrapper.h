/* Input of gen.sh: everything bindgen turns into src/bindings.rs. */
#include <linux/syslet.h>
#include <asm/unistd_64.h>
