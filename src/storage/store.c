/* store.c: implemented in progress */
#include "storage/store.h"
