/* backup.c: implemented in progress */
#include "storage/backup.h"
