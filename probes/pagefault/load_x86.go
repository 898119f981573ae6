//go:build 386 || amd64

package pagefault

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/nervehq/nerve/probes/outlier"
	"github.com/nervehq/nerve/probes/targets"
)

// load loads and attaches the x86 programs.
func load(cfg *Config) (*kernelObjects, error) {
	haveCgroup, haveTgid := targets.Kinds(cfg.Targets)
	spec, err := loadPagefault()
	if err != nil {
		return nil, fmt.Errorf("load spec: %w", err)
	}
	on, limit, stall := cfg.outlierSettings()
	if err := outlier.Configure(spec, "pagefault_outliers", on, limit, stall); err != nil {
		return nil, err
	}
	if err := spec.Variables["have_cgroup_targets"].Set(haveCgroup); err != nil {
		return nil, err
	}
	if err := spec.Variables["have_tgid_targets"].Set(haveTgid); err != nil {
		return nil, err
	}
	var objs pagefaultObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	k := &kernelObjects{
		closer:  objs.Close,
		node:    objs.PagefaultStallSeconds,
		targets: objs.PagefaultTargetStallSeconds,
		cgroups: objs.TargetCgroups,
		tgids:   objs.TargetTgids,
		progs:   map[string]*ebpf.Program{"nrv_pf_fault": objs.NrvPfFault, "nrv_pf_switch": objs.NrvPfSwitch},

		outliers:     objs.PagefaultOutliers,
		outlierDrops: objs.OutlierDrops,
	}
	for name, prog := range k.progs {
		l, err := link.AttachTracing(link.TracingOptions{Program: prog})
		if err != nil {
			k.close()
			return nil, fmt.Errorf("attach %s: %w", name, err)
		}
		k.links = append(k.links, l)
	}
	return k, nil
}
