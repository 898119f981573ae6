//go:build !386 && !amd64

package pagefault

import (
	"fmt"
	"runtime"
)

func load(*Config) (*kernelObjects, error) {
	return nil, fmt.Errorf("page-fault stalls are measured on x86 only (exceptions:page_fault_user and orig_ax); %s has neither", runtime.GOARCH)
}
