/*
 * fuzz_keys: a datagram from a (compromised) session process to the key
 * process, answered as keyproc_main answers it, with one RSA and one EC
 * key: every input gets a reply, nothing exits or reads out of bounds.
 */
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "core/msg.h"
#include "keys/keys.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static EVP_PKEY *fuzz_keys[2];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* RSA 1024: a small key keeps a signing input fast */
	fuzz_keys[0] = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	fuzz_keys[1] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	return fuzz_keys[0] != NULL && fuzz_keys[1] != NULL ? 0 : -1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msg m, r;

	if (msg_from_wire(&m, data, size, -1) == 0) {
		(void)keyproc_answer(fuzz_keys, 2, &m, &r);
		if (msg_seal(&r) < 0)
			__builtin_trap();	/* a reply must always fit */
		msg_deinit(&r);
	}
	msg_deinit(&m);
	return 0;
}
