/* snapshot.c: implemented in progress */
#include "storage/snapshot.h"
